"""Reading the logs off the device every ``read_every`` steps (what a GPU run does) changes nothing but
when the host waits: the same records, the same parameters, NaNs reported at their own step."""
import pytest
import torch
from _run_util import records

from gantricks.build import build_data
from gantricks.checkpoint import load_latest
from gantricks.config import TrainConfig
from gantricks.errors import NonFiniteError
from gantricks.gan import GAN
from gantricks.train import train

SMALL = dict(generator="mlp:width=16,depth=2", discriminator="mlp:width=16,depth=2", batch_size=32, steps=40,
             eval_every=20, checkpoint_every=20, log_every=3, progress=False, data="ring8")




def test_batched_reads_give_the_same_records_and_parameters(tmp_path):
    train(TrainConfig(**SMALL, read_every=1), tmp_path / "each")
    train(TrainConfig(**SMALL, read_every=7), tmp_path / "batched")
    each, batched = records(tmp_path / "each"), records(tmp_path / "batched")
    assert [r for r in each if r["kind"] == "train"] == [r for r in batched if r["kind"] == "train"]
    assert [r for r in each if r["kind"] == "eval"] == [r for r in batched if r["kind"] == "eval"]
    assert len([r for r in each if r["kind"] == "train"]) == 40 // 3
    _, a = load_latest(tmp_path / "each" / "checkpoints")
    _, b = load_latest(tmp_path / "batched" / "checkpoints")
    for name, module in a["gan"]["modules"].items():
        for key, value in module.items():
            assert torch.equal(value, b["gan"]["modules"][name][key]), (name, key)


def test_the_loop_reads_once_per_read_every_steps_and_before_each_evaluation_and_checkpoint(tmp_path, monkeypatch):
    reads = []
    original = GAN.read

    def counting(self, steps):
        reads.append([s.step for s in steps])
        return original(self, steps)
    monkeypatch.setattr(GAN, "read", counting)
    train(TrainConfig(**SMALL, read_every=8), tmp_path / "run")
    # steps 1-8, 9-16, 17-20 (evaluation and checkpoint at 20), 21-28, 29-36, 37-40 (the end)
    assert [r[-1] for r in reads] == [8, 16, 20, 28, 36, 40]
    assert [s for r in reads for s in r] == list(range(1, 41))


class _PoisonAt:
    """ring8's sampler, but the batch of the ``at``-th call is NaN: D's loss at that step is not finite."""

    def __init__(self, sampler, at: int):
        self.sampler, self.at, self.calls = sampler, at, 0
        self.centers, self.std = sampler.centers, sampler.std

    def __call__(self, n):
        self.calls += 1
        x = self.sampler(n)
        return torch.full_like(x, float("nan")) if self.calls == self.at else x

    shape = property(lambda self: self.sampler.shape)
    state_dict = property(lambda self: self.sampler.state_dict)
    load_state_dict = property(lambda self: self.sampler.load_state_dict)
    reference = property(lambda self: self.sampler.reference)


def test_a_nan_is_reported_at_its_own_step_when_reads_are_batched(tmp_path):
    config = TrainConfig(**SMALL, read_every=8)
    data = _PoisonAt(build_data(config), at=26)          # one real batch a step: call 26 feeds step 26
    with pytest.raises(NonFiniteError, match="at step 26.*last good checkpoint kept: .*step-00000020.pt"):
        train(config, tmp_path / "nan", data=data)
    steps = [r["step"] for r in records(tmp_path / "nan") if r["kind"] == "train"]
    assert max(steps) == 24                               # steps 25-28 were read; 25 logged nothing (log_every 3)
    _, state = load_latest(tmp_path / "nan" / "checkpoints")
    assert state["step"] == 20


def test_read_every_must_not_be_negative():
    from gantricks.errors import ConfigError
    with pytest.raises(ConfigError, match="read_every must be >= 0"):
        TrainConfig(read_every=-1)


def test_the_overhead_benchmarks_library_loop_trains_as_gan_step():
    """benchmarks/overhead.py times ``step_deferred`` + batched ``read``: the same training as ``gan.step``."""
    import copy
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import overhead

    G, D, z_shape, sampler, batch, _ = overhead.make_model("ring-mlp", None)
    twins = copy.deepcopy((G, D, sampler))
    torch.manual_seed(3)
    loop = overhead.library(G, D, z_shape, lambda: sampler(batch), torch.device("cpu"), "fp32", False, read_every=4)
    for _ in range(10):
        loop()
    assert len(loop.pending) == 2 and loop.logs                  # steps 9 and 10 not read yet
    loop.flush()
    torch.manual_seed(3)
    G2, D2, sampler2 = twins
    gan = overhead.library(G2, D2, z_shape, lambda: sampler2(batch), torch.device("cpu"), "fp32", False).gan
    for _ in range(10):
        logs = gan.step(lambda: sampler2(batch))
    assert loop.logs == logs
    for a, b in zip(loop.gan.G.parameters(), gan.G.parameters()):
        assert torch.equal(a, b)


def test_sample_plots_last_draws_only_the_final_evaluation(tmp_path):
    train(TrainConfig(**SMALL, sample_plots="last"), tmp_path / "last")
    train(TrainConfig(**SMALL), tmp_path / "every")
    assert [p.name for p in sorted((tmp_path / "last" / "plots").glob("samples-*.png"))] == ["samples-00000040.png"]
    assert len(list((tmp_path / "every" / "plots").glob("samples-*.png"))) == 2
    assert records(tmp_path / "last") == records(tmp_path / "every")


def test_a_rollback_with_batched_reads_keeps_recording_to_the_end(tmp_path):
    """NaN at step 26, read at 28, rolled back to the checkpoint of step 20: metrics.jsonl then holds
    each step's record once, in order, up to the last step and its evaluation."""
    config = TrainConfig(**{**SMALL, "log_every": 2}, read_every=8, on_nonfinite="rollback")
    final = train(config, tmp_path / "rb", data=_PoisonAt(build_data(config), at=26))
    assert final["step"] == 40
    lines = records(tmp_path / "rb")
    steps = [r["step"] for r in lines if r["kind"] == "train"]
    assert steps == list(range(2, 41, 2))
    assert [r["step"] for r in lines if r["kind"] == "eval"] == [20, 40]


def test_a_steps_record_comes_before_its_flags(tmp_path, monkeypatch):
    """The monitor's flags of a step follow that step's train record (and its evaluation's record)."""
    from gantricks.monitor import Flag, Monitor

    def flag_every_tenth(self, step, logs):
        return [Flag("divergence", step, "test")] if step % 10 == 0 else []
    monkeypatch.setattr(Monitor, "observe_step", flag_every_tenth)
    monkeypatch.setattr(Monitor, "_raise", lambda self, *a: [])
    train(TrainConfig(**{**SMALL, "log_every": 5}, read_every=7), tmp_path / "run")
    kinds = [(r["kind"], r["step"]) for r in records(tmp_path / "run")]
    for step in (10, 20, 30, 40):
        at = kinds.index(("flag", step))
        assert kinds[at - 1] == (("eval", step) if step in (20, 40) else ("train", step)), kinds[at - 3:at + 1]


def test_the_overhead_benchmark_reads_as_train_does_on_each_device():
    """overhead.py takes train's default read interval: every step on a CPU, READ_EVERY on a GPU."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import overhead

    from gantricks.train import READ_EVERY

    assert overhead.default_read_every(torch.device("cpu")) == 1
    assert overhead.default_read_every(torch.device("cuda")) == READ_EVERY == 32


def test_the_overhead_benchmark_takes_trains_diagnose_every_and_refuses_a_bad_one(capsys):
    """overhead.py's library path computes diagnostics at train's default cadence; ``--diagnose-every`` below 1
    (a division by zero, or a cadence that means nothing) is one line and exit 2, before any timing."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import overhead

    assert overhead.train_diagnose_every() == TrainConfig().diagnose_every == 10
    for bad in ("0", "-1", "x"):
        with pytest.raises(SystemExit) as err:
            overhead.main(["--models", "mlp64", "--diagnose-every", bad])
        assert err.value.code == 2
        assert "--diagnose-every" in capsys.readouterr().err


def test_diagnostics_on_every_diagnose_every_th_step_and_every_logged_step_and_the_same_run(tmp_path):
    """D's accuracies, mean logits and gradient norms come on steps divisible by ``diagnose_every`` or
    ``log_every`` and on the last; the other steps log the losses. Diagnostics only read: the run (records'
    losses, parameters) is the same as with them every step."""
    seen = {}
    train(TrainConfig(**{**SMALL, "steps": 31}, diagnose_every=4), tmp_path / "sparse",
          on_step=lambda gan, logs: seen.__setitem__(gan.step_count, set(logs)))
    diagnosed = {s for s, keys in seen.items() if {"d_acc_real", "d_real", "grad_norm_d", "grad_norm_g"} <= keys}
    assert diagnosed == {s for s in range(1, 32) if s % 4 == 0 or s % 3 == 0 or s == 31}
    assert all({"d_loss", "g_loss"} <= keys for keys in seen.values()) and len(seen) == 31
    train(TrainConfig(**{**SMALL, "steps": 31}, diagnose_every=1), tmp_path / "every")
    sparse, every = records(tmp_path / "sparse"), records(tmp_path / "every")
    assert [r for r in sparse if r["kind"] == "train"] == [r for r in every if r["kind"] == "train"]
    assert all("grad_norm_d" in r for r in sparse if r["kind"] == "train")
    _, a = load_latest(tmp_path / "sparse" / "checkpoints")
    _, b = load_latest(tmp_path / "every" / "checkpoints")
    for name, module in a["gan"]["modules"].items():
        for key, value in module.items():
            assert torch.equal(value, b["gan"]["modules"][name][key]), (name, key)
