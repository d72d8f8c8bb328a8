"""Seeds side by side (gantricks/vectorized.py): each seed's run is the run it would be alone."""
import pytest
import torch
from _run_util import records

from gantricks.bench import PROTOCOLS, cells
from gantricks.checkpoint import load_latest
from gantricks.config import TrainConfig
from gantricks.errors import ConfigError
from gantricks.train import train
from gantricks.vectorized import SeedStack, train_side_by_side, why_not

STEPS = 20
FAST = {**PROTOCOLS["fast"], "steps": STEPS, "eval_every": 10, "checkpoint_every": 10, "log_every": 1,
        "progress": False, "eval_samples": 200, "keep_checkpoints": 1, "sample_plots": "last"}
SUPPORTED = [c for c, o in cells().items() if why_not(TrainConfig(**{**FAST, **o})) is None]




def _close(a, b, what, rel, abs_):
    assert a.keys() == b.keys(), what
    for k in a:
        if isinstance(a[k], float):
            assert a[k] == pytest.approx(b[k], rel=rel, abs=abs_), (what, k)
        elif isinstance(a[k], list) and rel > 1e-4:    # mode counts: a sample may cross a boundary
            assert all(abs(x - y) <= 2 for x, y in zip(a[k], b[k])), (what, k)
        else:
            assert a[k] == b[k], (what, k)


# Batched matrix products round differently from the plain ones (~1e-7 relative). Adam amplifies that where a
# gradient is zero in exact arithmetic (the bias before a batch norm, a dead unit): there it steps by ±lr on
# the sign of rounding noise. The logs of the first steps agree to 1e-5 (most to 1e-7); later they drift
# apart (by 1e-3 at step 15 for the baseline; n_critic 5, whose D steps five times as often, by tens of
# percent by step 18), as a run does between two BLAS libraries. So the arithmetic is checked tightly over the
# first steps, and the 20-step runs for what must be exact: the noise and data streams, the records and files.
EXACT_STEPS = 3


def test_the_supported_cells_are_those_without_tricks_or_schemes():
    assert {"baseline", "ttur", "n-critic-5", "loss-minimax", "loss-hinge", "label-smoothing"} <= set(SUPPORTED)
    assert not {"pacgan", "minibatch-discrimination", "unrolled", "spectral-norm", "madgan"} & set(SUPPORTED)
    assert "trick 'pacgan'" in why_not(TrainConfig(**FAST, tricks=("label-smoothing", "pacgan")))


@pytest.mark.parametrize("cell", ["baseline", "n-critic-5"])     # the losses differ only in arithmetic (below)
def test_a_seed_side_by_side_equals_its_run_alone(cell, tmp_path):
    """20 steps of seeds 0 and 1 together; seed 1 alone: the same records, evaluations, flags and checkpoint
    (its noise stream and data sampler exactly where its own run leaves them)."""
    configs = [TrainConfig(**{**FAST, **cells()[cell]}, seed=s, data="ring8") for s in range(2)]
    outs = [tmp_path / f"seed{s}" for s in range(2)]
    results = train_side_by_side(configs, outs)
    assert [r["error"] for r in results] == [None] * 2
    train(configs[1], tmp_path / "alone")
    side, alone = records(outs[1]), records(tmp_path / "alone")
    assert [(r["kind"], r["step"]) for r in side] == [(r["kind"], r["step"]) for r in alone]
    assert [sorted(r) for r in side] == [sorted(r) for r in alone]
    for a, b in zip(side, alone):
        if a["step"] <= EXACT_STEPS:
            _close(a, b, (cell, a["kind"], a["step"]), rel=1e-5, abs_=1e-6)
    _, x = load_latest(outs[1] / "checkpoints")
    _, y = load_latest(tmp_path / "alone" / "checkpoints")
    assert x["step"] == y["step"] == STEPS
    assert x["gan"]["modules"]["G"].keys() == y["gan"]["modules"]["G"].keys()
    assert torch.equal(x["gan"]["rng"]["torch"], y["gan"]["rng"]["torch"])     # the same noise drawn
    assert torch.equal(x["sampler"]["order"], y["sampler"]["order"]) and x["sampler"]["pos"] == y["sampler"]["pos"]
    assert x["gan"]["optimizers"]["D"]["param_groups"] == y["gan"]["optimizers"]["D"]["param_groups"]
    assert [int(s["step"]) for s in x["gan"]["optimizers"]["G"]["state"].values()] == \
        [int(s["step"]) for s in y["gan"]["optimizers"]["G"]["state"].values()]


@pytest.mark.parametrize("cell", SUPPORTED)
def test_the_first_steps_of_a_seed_side_by_side_are_its_steps_alone(cell):
    """3 steps of the stacked model against ``gan.step`` of the seed's own GAN: parameters and Adam state."""
    from gantricks.build import build_data, build_gan

    configs = [TrainConfig(**{**FAST, **cells()[cell]}, seed=s) for s in range(3)]
    stack = SeedStack(configs)
    sampler = build_data(configs[2])
    gan = build_gan(configs[2], sampler.shape)          # seeds torch's RNG as its own run does
    for step in range(1, 4):
        side = stack.step()
        alone = gan.step(lambda: sampler(configs[2].batch_size))
        # by step 3 the ±lr steps of the biases before G's batch norms (above) reach the weights: on an AVX-512
        # Xeon, label smoothing's grad_norm_g then differs by 4.5e-4 relative (an AVX2 EPYC: under 1e-5)
        rel = 1e-5 if step < 3 else 1e-3
        for k, v in alone.items():
            assert side[k][2].item() == pytest.approx(v, rel=rel, abs=1e-6), (cell, step, k)
    mine = stack.seed_gan(2)
    for net in ("G", "D"):
        for (k, v), w in zip(gan.modules[net].state_dict().items(), mine.modules[net].state_dict().values()):
            # where the gradient is zero in exact arithmetic Adam steps ±lr on rounding noise (see above)
            torch.testing.assert_close(w, v, rtol=1e-5, atol=2 * 3 * max(configs[2].lr_g, configs[2].lr_d),
                                       msg=f"{cell} {net} {k}")
        a, b = gan.optimizers[net].state_dict()["state"], mine.optimizers[net].state_dict()["state"]
        for i in a:
            # G's second moments follow its weights: on the AVX-512 Xeon they differ by up to 6e-3 of each tensor's
            # largest after 3 steps (D's by 1e-6); a wrong seed's or a missed step's state is off by its whole size
            scale = a[i]["exp_avg_sq"].abs().max().item()
            torch.testing.assert_close(b[i]["exp_avg_sq"], a[i]["exp_avg_sq"], rtol=1e-5, atol=max(1e-12, 1e-2 * scale),
                                       msg=f"{cell} {net} exp_avg_sq {i}")


def test_a_seed_side_by_side_resumes_alone_as_its_run_would(tmp_path):
    configs = [TrainConfig(**FAST, seed=s) for s in range(2)]
    train_side_by_side([c.replace(steps=10) for c in configs], [tmp_path / "a0", tmp_path / "a1"])
    _resumes_alone_as_its_run_would(configs[1], tmp_path / "a1", tmp_path)   # 10 more steps, alone


def _resumes_alone_as_its_run_would(config, folder, tmp_path):
    """Resume the seed's folder alone to its end: the noise, data and records of its run trained alone."""
    train(config, folder, resume=True)
    train(config, tmp_path / "alone")
    _, x = load_latest(folder / "checkpoints")
    _, y = load_latest(tmp_path / "alone" / "checkpoints")
    assert x["step"] == y["step"] == STEPS
    assert torch.equal(x["gan"]["rng"]["torch"], y["gan"]["rng"]["torch"])
    assert torch.equal(x["sampler"]["order"], y["sampler"]["order"]) and x["sampler"]["pos"] == y["sampler"]["pos"]
    assert [(r["kind"], r["step"]) for r in records(folder)] == \
        [(r["kind"], r["step"]) for r in records(tmp_path / "alone")]


def test_seeds_side_by_side_asked_to_stop_save_where_they_are_and_resume_alone(tmp_path, monkeypatch):
    """SIGTERM at step 7: each seed writes its checkpoint at step 7 (not only the periodic one at 10) and
    Stopped is raised; each then resumes alone to the run it would have been alone."""
    import os
    import signal

    from gantricks.errors import Stopped

    configs = [TrainConfig(**FAST, seed=s) for s in range(2)]
    original = SeedStack.step

    def step(self):
        values = original(self)
        if self.step_count == 7:
            os.kill(os.getpid(), signal.SIGTERM)     # taken by the loop's handler, not the default action
        return values
    monkeypatch.setattr(SeedStack, "step", step)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped, match="stopped by SIGTERM at step 7; checkpoint step-00000007.pt written for "
                                      "each of the 2 seeds") as stopped:
        train_side_by_side(configs, [tmp_path / "s0", tmp_path / "s1"])
    assert stopped.value.exit_code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == handler           # the loop's handler is gone
    monkeypatch.setattr(SeedStack, "step", original)
    for s in range(2):
        _, state = load_latest(tmp_path / f"s{s}" / "checkpoints")
        assert state["step"] == 7
        assert max(r["step"] for r in records(tmp_path / f"s{s}")) == 7
    _resumes_alone_as_its_run_would(configs[1], tmp_path / "s1", tmp_path)


def test_a_seed_that_goes_non_finite_stops_alone(tmp_path, monkeypatch):
    configs = [TrainConfig(**FAST, seed=s) for s in range(2)]
    original = SeedStack._real

    def poisoned(self):
        real = original(self)
        if self.step_count == 4:
            real[0] = float("nan")
        return real
    monkeypatch.setattr(SeedStack, "_real", poisoned)
    results = train_side_by_side(configs, [tmp_path / "s0", tmp_path / "s1"])
    assert results[0]["error"] == "NonFiniteError: non-finite D loss at step 5" and results[0]["final"] == {}
    assert results[1]["error"] is None and results[1]["final"]["step"] == STEPS


def test_configs_that_differ_in_more_than_the_seed_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="differ only in their seed"):
        SeedStack([TrainConfig(**FAST), TrainConfig(**{**FAST, "lr_g": 1e-3}, seed=1)])
    with pytest.raises(ConfigError, match="cannot run trick 'pacgan'"):
        SeedStack([TrainConfig(**FAST, tricks=("pacgan",))])


def test_bench_vectorize_runs_a_cells_seeds_side_by_side_and_says_which_ran_how(tmp_path, monkeypatch):
    from gantricks import bench
    from gantricks.bench import load_results, run_bench

    alone = []

    def run_alone(job):       # the runs alone are gantricks train's (tests/test_bench.py): only counted here
        alone.append((job.cell, job.seed))
        return {**bench._result(job, {"modes_covered": 8}, [], None), "cpu_s": 1.0, "wall_s": 1.0}
    monkeypatch.setattr(bench, "_run_job", run_alone)
    out = tmp_path / "bench"
    run_bench("ring8", 2, 10, out, only=["baseline", "pacgan"], progress=False, protocol="fast", vectorize=True,
              settings=["eval_samples=200"])
    lines = load_results(out / "results.jsonl")
    how = {(r["cell"], r["seed"]): (r["vectorized"], r.get("why_not")) for r in lines}
    assert how == {("baseline", 0): (2, None), ("baseline", 1): (2, None),
                   ("pacgan", 0): (0, "trick 'pacgan' (of the tricks only label-smoothing is batched yet)"),
                   ("pacgan", 1): (0, "trick 'pacgan' (of the tricks only label-smoothing is batched yet)")}
    side = [r for r in lines if r["vectorized"]]
    assert all(r["error"] is None and r["modes_covered"] is not None and len(r["evals"]) == 10 for r in side)
    assert all(r["batch_cpu_s"] >= r["cpu_s"] for r in side)
    report = (out / "report.md").read_text()
    assert "Seeds side by side" in report and "baseline (2 seeds)" in report and "Run alone: pacgan" in report
    run_bench("ring8", 2, 10, out, only=["baseline", "pacgan"], progress=False, protocol="fast", vectorize=True,
              settings=["eval_samples=200"])
    assert len(load_results(out / "results.jsonl")) == 4          # done runs are not run again
    assert alone == [("pacgan", 0), ("pacgan", 1)]


def test_a_seed_whose_folder_exists_resumes_alone(tmp_path):
    from gantricks.bench import plan, units

    jobs = plan("ring8", ["baseline"], 3, 10, tmp_path, protocol="fast")
    (tmp_path / "runs" / "fast" / "baseline" / "ring8" / "seed2").mkdir(parents=True)
    work = units(jobs, vectorize=True)
    assert [(u[0], [j.seed for j in u[1]]) for u in work if u[0] == "side"] == [("side", [0, 1])]
    assert [(u[0], u[1].seed, u[2]) for u in work if u[0] == "alone"] == [("alone", 2, "resumed from its own run folder")]
    assert all(u[0] == "alone" and u[2] == "" for u in units(jobs, vectorize=False))
