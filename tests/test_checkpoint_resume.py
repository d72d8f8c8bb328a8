"""Checkpoints are atomic, fall back past corrupt files, and a killed run resumes exactly."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gantricks.checkpoint import list_checkpoints, load_latest, save_checkpoint
from gantricks.errors import CheckpointError

ARGS = ["--data", "ring8", "--generator", "mlp:width=32,depth=2", "--discriminator", "mlp:width=32,depth=2",
        "--batch-size", "64", "--eval-every", "0", "--checkpoint-every", "50", "--log-every", "10",
        "--eval-samples", "500", "--seed", "3", "--no-progress"]


def _cmd(out, steps, *extra):
    return [sys.executable, "-m", "gantricks", "train", "--out", str(out), "--steps", str(steps), *ARGS, *extra]


def _final_state(run):
    _, state = load_latest(run / "checkpoints")
    return state["gan"]["modules"]


def test_save_prune_and_fallback(tmp_path):
    folder = tmp_path / "ck"
    for step in (1, 2, 3, 4):
        save_checkpoint(folder, step, {"gan": {"x": torch.tensor([float(step)])}, "step": step}, keep=3)
    assert [p.name for p in list_checkpoints(folder)] == ["step-00000002.pt", "step-00000003.pt",
                                                         "step-00000004.pt"]
    newest = list_checkpoints(folder)[-1]
    newest.write_bytes(newest.read_bytes()[:40])                 # truncated, as by a full disk
    with pytest.warns(UserWarning, match="corrupt or truncated"):
        path, state = load_latest(folder)
    assert path.name == "step-00000003.pt" and state["step"] == 3
    for p in list_checkpoints(folder):
        p.write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match="no usable checkpoint"):
        load_latest(folder)


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_refuses_pickled_objects(tmp_path):
    """weights_only=True: a checkpoint carrying arbitrary objects is refused, not executed."""
    p = tmp_path / "step-00000001.pt"
    torch.save({"gan": Payload(), "step": 1}, p)
    with pytest.raises(CheckpointError, match="refused: it holds objects other than tensors"):
        from gantricks.checkpoint import load_checkpoint
        load_checkpoint(p)


def test_kill_while_training_then_resume_equals_uninterrupted(tmp_path):
    """Killed at step 150 of 300, inside the learning-rate decay (from step 90): the resumed run
    continues the schedule and ends bit-identical to the uninterrupted one."""
    steps = 300
    full, killed = tmp_path / "full", tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    decay = ("--lr-decay", "linear", "--lr-decay-start", "0.3")
    subprocess.run(_cmd(full, steps, *decay), check=True, env=env, capture_output=True, timeout=300)

    proc = subprocess.Popen(_cmd(killed, steps, *decay), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not any(p.name == "step-00000150.pt" for p in
                                             list_checkpoints(killed / "checkpoints")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [p.name for p in list_checkpoints(killed / "checkpoints")]
    assert "step-00000300.pt" not in done, "the run finished before it was killed"
    assert "step-00000150.pt" in done

    r = subprocess.run(_cmd(killed, steps, "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a, b = _final_state(full), _final_state(killed)
    for net in ("G", "D"):
        for key in a[net]:
            torch.testing.assert_close(a[net][key], b[net][key], rtol=0, atol=0, msg=f"{net}.{key}")
    records = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    steps_logged = [r["step"] for r in records if r["kind"] == "train"]
    assert steps_logged == list(range(10, steps + 1, 10))          # no line of the killed tail survives twice


def test_resume_extends_steps_and_refuses_changes(tmp_path):
    from gantricks.cli import main

    run = tmp_path / "r"
    assert main(_cmd(run, 20)[3:]) == 0
    assert main(_cmd(run, 30, "--resume")[3:]) == 0
    assert _final_state(run) and load_latest(run / "checkpoints")[1]["step"] == 30
    r = subprocess.run(_cmd(run, 40, "--resume", "--lr-g", "0.1"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cannot change 'lr_g' when resuming" in r.stderr


def test_nan_stops_at_its_step_and_keeps_good_checkpoint(tmp_path):
    import gantricks as gt
    from gantricks.config import TrainConfig
    from gantricks.errors import NonFiniteError
    from gantricks.train import train

    cfg = TrainConfig(generator="mlp:width=16,depth=2", discriminator="mlp:width=16,depth=2", batch_size=32,
                      steps=60, checkpoint_every=20, eval_every=0, progress=False)
    calls = {"n": 0}

    def poison(gan, logs):       # from step 45 on, D's weights are NaN: the next step must stop
        calls["n"] += 1
        if gan.step_count == 45:
            with torch.no_grad():
                next(gan.D.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="at step 46.*last good checkpoint kept: .*step-00000040.pt"):
        train(cfg, tmp_path / "nan", on_step=poison)
    _, state = load_latest(tmp_path / "nan" / "checkpoints")
    assert state["step"] == 40
    assert all(torch.isfinite(v).all() for v in state["gan"]["modules"]["D"].values() if v.is_floating_point())
    assert gt  # imported


def _rollback_run(tmp_path, steps: int, checkpoint_every: int, nan_at: int):
    """A run with ``on_nonfinite=rollback`` whose D's weights are made NaN once, after step ``nan_at``."""
    from gantricks.config import TrainConfig
    from gantricks.train import train

    cfg = TrainConfig(generator="mlp:width=16,depth=2", discriminator="mlp:width=16,depth=2", batch_size=32,
                      steps=steps, checkpoint_every=checkpoint_every, eval_every=0, progress=False,
                      on_nonfinite="rollback")
    poisoned = []

    def poison(gan, logs):
        if gan.step_count == nan_at and not poisoned:
            poisoned.append(True)
            with torch.no_grad():
                next(gan.D.parameters()).fill_(float("nan"))
    final = train(cfg, tmp_path / "rb", on_step=poison)
    assert poisoned
    return cfg, final


def test_a_run_goes_on_for_many_windows_after_a_rollback(tmp_path):
    """After a rollback the monitor sees steps again that it has seen: a run then trains on for more than
    the monitor's longest window (1,000 steps; the step windows start again at the checkpoint)."""
    _, final = _rollback_run(tmp_path, steps=1300, checkpoint_every=100, nan_at=180)
    assert final["step"] == 1300


def test_nan_rollback_reloads_and_halves_lr(tmp_path, capsys):
    cfg, final = _rollback_run(tmp_path, steps=60, checkpoint_every=20, nan_at=45)
    assert final["step"] == 60
    assert "rolled back to step-00000040.pt" in capsys.readouterr().out
    _, state = load_latest(tmp_path / "rb" / "checkpoints")
    assert state["gan"]["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(cfg.lr_g / 2)


def test_a_resumed_run_counts_the_time_spent_before_its_checkpoint(tmp_path):
    """The checkpoint keeps the CPU and wall seconds spent so far; a resumed run's evaluations continue those
    clocks, so its cpu_s is the run's whole cost, not only the part after the resume."""
    from gantricks.bench import Job, _run_job
    from gantricks.config import TrainConfig, load_toml, to_toml
    from gantricks.train import train

    cfg = TrainConfig(generator="mlp:width=16,depth=2", discriminator="mlp:width=16,depth=2", batch_size=32,
                      steps=200, checkpoint_every=200, eval_every=200, eval_samples=200, progress=False)
    first = train(cfg, tmp_path / "r")
    _, state = load_latest(tmp_path / "r" / "checkpoints")
    assert state["elapsed"]["cpu_s"] >= first["cpu_s"] > 0 and state["elapsed"]["wall_s"] > 0
    # one more step: without the kept clocks its cpu_s would be one step's, far below the first part's
    second = train(TrainConfig(**{**cfg.to_dict(), "steps": 201}), tmp_path / "r", resume=True)
    assert second["cpu_s"] >= state["elapsed"]["cpu_s"] and second["wall_s"] >= state["elapsed"]["wall_s"]
    # a checkpoint from before the clocks were kept (or with no number in them) resumes with clocks from zero
    state["elapsed"] = {"cpu_s": "a lot", "wall_s": float("nan")}
    save_checkpoint(tmp_path / "r" / "checkpoints", 201, state)
    third = train(TrainConfig(**{**cfg.to_dict(), "steps": 202}), tmp_path / "r", resume=True)
    assert third["cpu_s"] < first["cpu_s"]

    # the bench's line for a resumed run gives the run's whole CPU and says it was resumed
    small = {"generator": "mlp:width=16,depth=2", "discriminator": "mlp:width=16,depth=2", "eval_samples": 200}
    job = Job(cell="baseline", dataset="ring8", seed=0, steps=200, protocol="fast", out=str(tmp_path / "b"),
              overrides=small)
    fresh = _run_job(job)
    assert "resumed" not in fresh and fresh["error"] is None
    spent = load_latest(tmp_path / "b" / "checkpoints")[1]["elapsed"]["cpu_s"]
    # as a run of 210 steps killed after its checkpoint at 200 (the bench refuses a run folder of another length)
    config = tmp_path / "b" / "config.toml"
    config.write_text(to_toml(load_toml(config).replace(steps=210)))
    more = _run_job(Job(**{**job.__dict__, "steps": 210}))
    assert more["resumed"] is True and more["error"] is None and more["cpu_s"] >= spent


def test_a_resumed_run_raises_the_flags_an_uninterrupted_one_raises(tmp_path):
    """The monitor's state is in the checkpoint: a flag standing at the checkpoint is not raised again after the
    resume, and the flag records of the resumed run equal the uninterrupted run's."""
    from gantricks.config import TrainConfig
    from gantricks.monitor import Monitor
    from gantricks.train import RunDir, train

    # a G that stays collapsed (near-zero weights, tiny learning rates): its mode-collapse flag stands throughout
    cfg = TrainConfig(generator="mlp:width=8,depth=1,init=orthogonal,init_gain=0.05",
                      discriminator="mlp:width=8,depth=1", batch_size=32, lr_g=1e-7, lr_d=1e-7,
                      steps=60, checkpoint_every=30, eval_every=10, eval_samples=200, progress=False, seed=1)

    def flags(run):
        return [(r["step"], r["flag"]) for r in RunDir(run).records() if r.get("kind") == "flag"]
    train(cfg, tmp_path / "whole")
    train(TrainConfig(**{**cfg.to_dict(), "steps": 30}), tmp_path / "parts")
    train(cfg, tmp_path / "parts", resume=True)
    whole = flags(tmp_path / "whole")
    assert whole == [(10, "mode-collapse")]               # raised once, standing across the checkpoint at 30
    assert flags(tmp_path / "parts") == whole             # (a fresh monitor raised it again at step 40)

    # the state round-trips through torch.save / weights_only load, and a bad one is refused in one line
    state = load_latest(tmp_path / "parts" / "checkpoints")[1]["monitor"]
    again = Monitor()
    again.load_state_dict(state)
    assert again.state_dict() == state
    with pytest.raises(ValueError, match="not a monitor state"):
        Monitor().load_state_dict({"active": 3})


def test_a_run_resumed_at_its_last_step_returns_its_last_evaluation(tmp_path):
    """A run stopped after its last checkpoint but before its result was read (a bench's worker at the end of a
    run): resuming it trains nothing and returns the recorded last evaluation, not an empty result."""
    from gantricks.config import TrainConfig
    from gantricks.train import train

    cfg = TrainConfig(generator="mlp:width=16,depth=2", discriminator="mlp:width=16,depth=2", batch_size=32,
                      steps=20, checkpoint_every=20, eval_every=10, eval_samples=200, progress=False)
    first = train(cfg, tmp_path / "r")
    again = train(cfg, tmp_path / "r", resume=True)
    assert again["modes_covered"] is not None and again == first
