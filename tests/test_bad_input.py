"""Bad input and faults (issue 14): each case gets one line on stderr and exit 2 (a GantricksError in
Python), leaves no partial run folder, and deletes nothing that is not a run folder. A row per case, so
none comes back."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gantricks.checkpoint import list_checkpoints, load_latest
from gantricks.cli import main
from gantricks.config import TrainConfig
from gantricks.errors import ConfigError, GantricksError, NonFiniteError

SMALL = ["--generator", "mlp:width=16,depth=2", "--discriminator", "mlp:width=16,depth=2,maxout=2",
         "--batch-size", "32", "--eval-samples", "200", "--no-progress"]
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 4-step run folder, for the rows that need one."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "--out", str(run), "--steps", "4", "--eval-every", "0", *SMALL]) == 0
    return run


def _file(tmp_path, name, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# each row: (args given tmp_path and the trained run, the message's words, paths that must not exist after)
ROWS = {
    "out is an ordinary file, with --overwrite": (
        lambda t, r: ["train", "--out", str(_file(t, "notes.txt", b"precious")), "--overwrite", "--steps", "2",
                      *SMALL], "is a file, not a run folder", []),
    "batch size 1 with batch norm": (
        lambda t, r: ["train", "--out", str(t / "run"), "--steps", "2", *SMALL, "--batch-size", "1",
                      "--generator", "mlp:width=16,depth=2"], "batch norm, which needs 2 or more", ["run"]),
    "a batch too large for memory": (   # the 100,000,000; this one fails as fast on any machine
        lambda t, r: ["train", "--out", str(t / "run"), "--steps", "2", *SMALL, "--batch-size", "1000000",
                      "--generator", "mlp:width=200000,depth=1"], "not enough memory for one training step", ["run"]),
    "TOML batch_size = true": (
        lambda t, r: ["train", "--config", str(_file(t, "c.toml", b"batch_size = true\n")), "--out", str(t / "run")],
        "'batch_size' must be an integer, got true", ["run"]),
    "a TOML file that is not UTF-8": (
        lambda t, r: ["train", "--config", str(_file(t, "c.toml", b"steps = 3\n# caf\xe9\n")),
                      "--out", str(t / "run")], "is not UTF-8 text", ["run"]),
    "--out under a path that cannot be made": (
        lambda t, r: ["train", "--out", str(_file(t, "f", b"x") / "run"), "--steps", "2", *SMALL],
        "cannot create run folder", []),
    "resume with fewer steps than done": (
        lambda t, r: ["train", "--out", str(r), "--resume", "--steps", "2"], "already at step 4", []),
    "sample more than a .pt holds": (
        lambda t, r: ["sample", str(r), "-n", "100000000", "--out", str(t / "s.pt")], "write .npy", ["s.pt"]),
    "demo --overwrite over a folder that is not a demo's": (
        lambda t, r: ["demo", "--out", str(_file(t, "thesis.tex", b"precious").parent), "--overwrite",
                      "--steps", "2"], "is not a demo folder", []),
    "demo --out FILE": (
        lambda t, r: ["demo", "--out", str(_file(t, "notes.txt", b"precious")), "--steps", "2"],
        "is a file, not a demo folder", []),
    "bench --out FILE": (
        lambda t, r: ["bench", "--out", str(_file(t, "notes.txt", b"precious")), "--suite", "ring8", "--seeds", "1",
                      "--steps", "2", "--only", "baseline", "--workers", "1"], "is a file, not a bench folder", []),
    "list of an unknown name": (
        lambda t, r: ["list", "nope"], "is neither a kind", []),
    "bench protocol that does not fit the suite": (
        lambda t, r: ["bench", "--out", str(t / "bench"), "--suite", "stacked-mnist", "--protocol", "collapse"],
        "protocol 'collapse' is for mixtures", ["bench"]),
    "label smoothing with the hinge loss": (
        lambda t, r: ["train", "--out", str(t / "run"), "--loss", "hinge", "--trick", "label-smoothing:real=0.9",
                      "--steps", "2", *SMALL], "label-smoothing", ["run"]),
}


@pytest.mark.parametrize("case", list(ROWS))
def test_cli_bad_input_is_one_line_exit_2_and_leaves_nothing(case, tmp_path, trained, capsys):
    make_args, words, absent = ROWS[case]
    run_before = {p: p.read_bytes() for p in trained.rglob("*") if p.is_file() and p.name != ".lock"}
    args = make_args(tmp_path, trained)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    for name in absent:
        assert not (tmp_path / name).exists(), f"{name} left behind"
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before     # nothing lost or added
    assert {p: p.read_bytes() for p in trained.rglob("*") if p.is_file() and p.name != ".lock"} == run_before


def _append(run: Path, *records) -> None:
    """Lines at the end of metrics.jsonl: records, or the bytes of a line as they are."""
    with (run / "metrics.jsonl").open("ab") as f:
        f.write(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records))


def _insert_line(run: Path, at: int, text: str) -> None:
    """``text`` as line ``at`` of metrics.jsonl (1-based), the lines after it moved down."""
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(lines[:at - 1] + [text + "\n"] + lines[at - 1:]))


def _edit_checkpoint(run: Path, **changes) -> None:
    path = list_checkpoints(run / "checkpoints")[-1]
    torch.save({**torch.load(path, weights_only=True), **changes}, path)


def _widen(run: Path) -> None:
    config = run / "config.toml"
    config.write_text(config.read_text().replace("width=16", "width=32"))


def _replace_with_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


A_FLAG = {"kind": "flag", "step": 3, "flag": "oscillation", "detail": "D's loss swings"}

# a damaged copy of a finished run: (damage, the command's arguments after the run folder, the message's words)
DAMAGED = {
    "a metrics line that is JSON but not an object": (
        lambda r: _insert_line(r, 2, "1"), ["diagnose"], "metrics.jsonl, line 2: JSON, but not an object"),
    "metrics.jsonl not UTF-8": (
        lambda r: _append(r, b"caf\xe9"), ["diagnose"], "not UTF-8 text"),
    "metrics.jsonl a folder": (
        lambda r: _replace_with_folder(r / "metrics.jsonl"), ["diagnose"], "cannot read"),
    "a garbage line in the middle, flags after it": (     # was: the records silently ended there
        lambda r: (_insert_line(r, 2, "garbage"), _append(r, A_FLAG)), ["diagnose"], "line 2: not JSON"),
    "a flag record of an unknown flag without its detail": (
        lambda r: _append(r, {"kind": "flag", "step": 3, "flag": "nope"}), ["diagnose"],
        "a flag record without its 'flag' name or its 'detail'"),
    "a flag record without its flag": (
        lambda r: _append(r, {"kind": "flag", "step": 3, "detail": "x"}), ["diagnose"],
        "a flag record without its 'flag' name"),
    "an eval record with modes_covered but no modes": (
        lambda r: _append(r, {"kind": "eval", "step": 4, "modes_covered": 3}), ["diagnose"],
        "an eval record with 'modes_covered' but no 'modes'"),
    "a train record without its step": (
        lambda r: _append(r, {"kind": "train", "d_loss": 1.0}), ["diagnose"], "a train record without an integer 'step'"),
    "a string d_real": (
        lambda r: _append(r, {"kind": "train", "step": 5, "d_real": "abc", "d_fake": 0.1}), ["diagnose"],
        "'d_real' is 'abc', not a number"),
    "plots a file": (
        lambda r: (shutil.rmtree(r / "plots"), (r / "plots").write_text("mine")), ["diagnose"],
        "is a file, not the run's plots folder"),
    "a plot that cannot be written (as in a read-only run folder, which root may write)": (
        lambda r: (r / "plots" / "diagnosis.png").mkdir(), ["diagnose"], "cannot write the plots of"),
    "eval: a config whose G is wider than the checkpoint's": (
        _widen, ["eval"], "does not fit the nets"),
    "sample: a config whose G is wider than the checkpoint's": (
        _widen, ["sample", "--out", "{tmp}/s.npy"], "does not fit the nets"),
    "resume: a config whose G is wider than the checkpoint's": (
        _widen, ["train", "--resume", "--steps", "8", "--no-progress"], "does not fit the nets"),
    "eval: an empty config.toml": (
        lambda r: (r / "config.toml").write_text(""), ["eval"], "does not fit the nets"),
    "eval: a checkpoint whose gan entry is empty": (
        lambda r: _edit_checkpoint(r, gan={}), ["eval"], "has no 'modules' entry"),
    "eval: a checkpoint whose step is not a number": (
        lambda r: _edit_checkpoint(r, step="abc"), ["eval"], "its step is 'abc', not a count of steps"),
    "eval: a seed torch does not take": (
        lambda r: None, ["eval", "--seed", "99999999999999999999999"], "--seed: 99999999999999999999999 is out of range"),
    "sample: a seed torch does not take": (
        lambda r: None, ["sample", "--seed", "-99999999999999999999999", "--out", "{tmp}/s.npy"], "is out of range"),
    "eval --samples 0 (was: the run's 2500)": (
        lambda r: None, ["eval", "--samples", "0"], "--samples must be >= 1, got 0"),
    "eval --samples -5": (
        lambda r: None, ["eval", "--samples", "-5"], "--samples must be >= 1, got -5"),
}


def _exit_status(args) -> int:
    try:
        return main(args)
    except SystemExit as err:     # a parse error: argparse exits
        return err.code


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_run_folder_is_one_line_exit_2_and_loses_nothing(case, tmp_path, trained, capsys):
    damage, command, words = DAMAGED[case]
    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns(".lock"))
    damage(run)
    before = {p for p in tmp_path.rglob("*")}
    args = [command[0], *(["--out"] if command[0] == "train" else []), str(run),
            *(a.format(tmp=tmp_path) for a in command[1:])]
    assert _exit_status(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gantricks: error: ") and words in err[0], err
    assert before <= {p for p in tmp_path.rglob("*")}      # nothing deleted
    assert not (tmp_path / "s.npy").exists()


def test_diagnose_names_a_flag_it_does_not_know_with_the_remedies_of_its_record(tmp_path, trained, capsys):
    """A flag of a newer version or a plugin: shown with the remedies its record carries, not a KeyError."""
    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns(".lock"))
    _append(run, {"kind": "flag", "step": 3, "flag": "new-flag", "detail": "seen", "remedies": ["ema", "r1"]},
            {"kind": "flag", "step": 4, "flag": "odd-flag", "detail": "seen too"}, A_FLAG)
    assert main(["diagnose", str(run)]) == 0
    out = capsys.readouterr().out
    assert "  new-flag: ema, r1" in out and "  odd-flag: (a flag this version of gantricks does not know" in out
    assert "  oscillation: ema" in out and "  step       4  odd-flag            seen too" in out


def test_only_a_last_line_cut_by_a_kill_is_skipped(tmp_path, trained, capsys):
    """A run killed while writing a record leaves half a line, without its newline, last: diagnose (and
    resume) read the records before it. A line that is not JSON anywhere else is an error naming it."""
    from gantricks.train import RunDir

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns(".lock"))
    whole = RunDir(run).records()
    _append(run, A_FLAG)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "step": 5, "d_lo')
    assert RunDir(run).records() == [*whole, A_FLAG]
    assert main(["diagnose", str(run)]) == 0
    assert f"{sum(r['kind'] == 'flag' for r in whole) + 1} flags" in capsys.readouterr().out
    assert main(["train", "--out", str(run), "--resume", "--steps", "6", "--log-every", "1", "--no-progress"]) == 0
    assert [r["step"] for r in RunDir(run).records() if r["kind"] == "train"][-1] == 6
    _append(run, b"garbage")       # whole (its newline written): not a cut, so not skipped
    with pytest.raises(ConfigError, match=r"metrics.jsonl, line \d+: not JSON"):
        RunDir(run).records()


def test_a_warning_is_one_line_then_the_error(tmp_path, trained):
    """A checkpoint skipped with a warning: one line, not Python's file:line and its source line; the error
    names the newest one's problem, so only the older ones are warned of (one checkpoint: one line). Python
    users keep Python's warnings (the CLI puts its format back)."""
    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns(".lock"))
    [ckpt] = list_checkpoints(run / "checkpoints")
    ckpt.write_bytes(ckpt.read_bytes()[:40])
    older = ckpt.with_name("step-00000001.pt")
    shutil.copy(ckpt, older)
    for expected in ([f"gantricks: warning: checkpoint {older} is corrupt or truncated (RuntimeError)",
                      f"gantricks: error: no usable checkpoint in {ckpt.parent}: checkpoint {ckpt} is corrupt or "
                      f"truncated (RuntimeError); 1 older checkpoint unusable too (warned above)"],
                     [f"gantricks: error: no usable checkpoint in {ckpt.parent}: checkpoint {ckpt} is corrupt or "
                      f"truncated (RuntimeError)"]):
        done = subprocess.run([sys.executable, "-m", "gantricks", "eval", str(run)], capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.splitlines() == expected, done.stderr
        older.unlink(missing_ok=True)           # then the newest alone
    shown = warnings.formatwarning
    assert main(["diagnose", str(run)]) == 0 and warnings.formatwarning is shown


def test_a_parse_error_is_one_line(tmp_path, capsys):
    """Not four lines of usage above it: the error and where to look, on one line; exit 2."""
    for args, words in ((["bench", "--seeds", "1.5", "--out", str(tmp_path / "b")], "argument --seeds: invalid int"),
                        (["eval"], "the following arguments are required: run"),
                        (["nope"], "argument COMMAND: invalid choice: 'nope'")):
        capsys.readouterr()
        assert _exit_status(args) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"gantricks: error: {words}") and "--help" in err[0], err


def _tiny(z=2, out=2, d_in=2):
    G = nn.Sequential(nn.Linear(z, 16), nn.ReLU(), nn.Linear(16, out))
    D = nn.Sequential(nn.Linear(d_in, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    return G, D


API_ROWS = {
    "G's output does not fit D's input": (lambda gt: gt.GAN(*_tiny(out=3), z_dim=2),
                                          "the discriminator does not take the generator's samples of shape (3,)"),
    "z_dim does not match G": (lambda gt: gt.GAN(*_tiny(z=16), z_dim=8), "the generator does not take noise"),
    "G's samples do not fit data_shape": (lambda gt: gt.GAN(*_tiny(), z_dim=2, data_shape=(3,)),
                                          "makes samples of shape (2,), but the data's samples have shape (3,)"),
    "a real batch of the wrong width": (lambda gt: gt.GAN(*_tiny(), z_dim=2).step(torch.randn(8, 3)),
                                        "a real batch of shape (8, 3) does not fit"),
    "sample(-1)": (lambda gt: gt.GAN(*_tiny(), z_dim=2).sample(-1), "n must be an integer >= 0"),
    "z_dim 0": (lambda gt: gt.GAN(*_tiny(), z_dim=0), "z_dim must be an integer >= 1"),
    "a bool as a count": (lambda gt: TrainConfig(batch_size=True), "batch_size must be a number"),
}


@pytest.mark.parametrize("case", list(API_ROWS))
def test_api_bad_input_is_a_gantricks_error(case):
    import gantricks as gt

    make, words = API_ROWS[case]
    with pytest.raises(GantricksError, match=re.escape(words)):
        make(gt)


def test_tricks_as_one_string_is_one_trick():
    import gantricks as gt

    gan = gt.GAN(*_tiny(), z_dim=2, tricks="spectral-norm")
    assert [t.name for t in gan.tricks] == ["spectral-norm"]


def test_the_shape_check_refuses_a_bad_d_and_leaves_the_rng_and_batch_norm_alone():
    """The dry forward at build names a D that does not fit, and on good nets changes nothing training
    would see: the global RNG, batch-norm statistics, the nets' modes."""
    import gantricks as gt

    G, D = _tiny(d_in=5)
    with pytest.raises(ConfigError, match="the discriminator does not take the generator's samples of shape"):
        gt.GAN(G, D, z_dim=2)
    G = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    gan = gt.GAN(G, D, z_dim=2)
    assert torch.equal(torch.rand(3), expected)
    assert int(G[1].num_batches_tracked) == 0 and G.training and gan.D.training


def test_readme_example_runs_as_written(tmp_path, capsys):
    """The README's experiment.toml and the command beside it, shortened (--steps, small nets)."""
    text = README.read_text()
    toml = re.search(r"```toml\n# experiment.toml\n(.*?)```", text, re.S).group(1)
    command = next(line for line in text.splitlines() if "--config experiment.toml" in line)
    (tmp_path / "experiment.toml").write_text(toml)
    args = command.split("#")[0].split()[1:]           # after "gantricks"
    args[args.index("--out") + 1] = str(tmp_path / "x")
    args[args.index("--config") + 1] = str(tmp_path / "experiment.toml")
    assert main([*args, "--steps", "2", "--eval-every", "0", *SMALL]) == 0, capsys.readouterr().err


def test_a_second_process_is_refused_and_a_killed_run_resumes_without_unlocking(tmp_path, capsys):
    """A run in another process holds its folder: a second start into it, to overwrite, resume or begin,
    is refused with the holder's pid. Once the holder is SIGKILLed, --resume just works."""
    run = tmp_path / "run"
    args = ["train", "--out", str(run), *SMALL, "--checkpoint-every", "20", "--eval-every", "0"]
    first = subprocess.Popen([sys.executable, "-m", "gantricks", *args, "--steps", "1000000"],
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list_checkpoints(run / "checkpoints"):
            time.sleep(0.05)
        assert list_checkpoints(run / "checkpoints"), "the first run wrote no checkpoint"
        for extra in (["--overwrite"], ["--resume"], []):
            assert main([*args, "--steps", "40", *extra]) == 2
            lines = capsys.readouterr().err.strip().splitlines()
            assert len(lines) == 1 and f"is in use by another gantricks process (pid {first.pid})" in lines[0], lines
        assert first.poll() is None and (run / "config.toml").exists()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    step = load_latest(run / "checkpoints")[1]["step"]
    assert main([*args, "--steps", str(step + 20), "--resume"]) == 0, capsys.readouterr().err
    assert load_latest(run / "checkpoints")[1]["step"] == step + 20


def _weights(run):
    return load_latest(run / "checkpoints")[1]["gan"]["modules"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("full") / "run"
    assert main(_signal_cmd(run)[3:]) == 0
    return _weights(run)


def _signal_cmd(run):
    return [sys.executable, "-m", "gantricks", "train", "--out", str(run), "--steps", "300", "--seed", "1",
            "--generator", "mlp:width=32,depth=2", "--discriminator", "mlp:width=32,depth=2", "--batch-size", "64",
            "--eval-every", "0", "--checkpoint-every", "1000", "--log-every", "10", "--no-progress",
            "--lr-decay", "linear", "--lr-decay-start", "0.3"]


def _assert_resumed_exactly(run, uninterrupted):
    assert main([*_signal_cmd(run)[3:], "--resume"]) == 0
    resumed = _weights(run)
    for net in ("G", "D"):
        for key in uninterrupted[net]:
            torch.testing.assert_close(resumed[net][key], uninterrupted[net][key], rtol=0, atol=0)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(10, 301, 10))


def test_sigint_writes_a_checkpoint_and_the_resume_is_exact(tmp_path, uninterrupted):
    """Ctrl-C at step 123 (sent from inside the run, so it lands at a known step): the run saves step 123,
    raises Stopped (exit 130 from the command line), and resuming ends as the uninterrupted run."""
    from gantricks.cli import build_parser
    from gantricks.config import from_mapping
    from gantricks.errors import Stopped
    from gantricks.train import train

    args = build_parser().parse_args(_signal_cmd(tmp_path / "run")[3:])
    config = from_mapping({k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__
                           and v is not None})

    def interrupt(gan, logs):
        if gan.step_count == 123:
            os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(Stopped, match="stopped by SIGINT at step 123; checkpoint step-00000123.pt written") as err:
        train(config, tmp_path / "run", on_step=interrupt)
    assert err.value.exit_code == 130
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step-00000123.pt"]
    _assert_resumed_exactly(tmp_path / "run", uninterrupted)


def test_sigterm_writes_a_checkpoint_and_the_resume_is_exact(tmp_path, uninterrupted):
    """SIGTERM from outside, mid-run (no checkpoint due before the end): the run saves where it is, exits
    143 with one line, and the resumed run ends bit-identical to the uninterrupted one."""
    sig = signal.SIGTERM
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_signal_cmd(run), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []
        if len(lines) >= 5:
            break
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    stopped = [p.name for p in list_checkpoints(run / "checkpoints")]
    assert len(stopped) == 1 and stopped != ["step-00000300.pt"], (stopped, err)
    step = int(stopped[0][5:13])
    assert err.strip().splitlines() == [f"gantricks: stopped: stopped by {signal.Signals(sig).name} at step {step}; "
                                        f"checkpoint {stopped[0]} written, continue with --resume"]
    _assert_resumed_exactly(run, uninterrupted)


def test_a_second_signal_exits_at_once():
    from gantricks.stopping import StopRequest

    # as in a terminal, whatever started pytest (a background job starts with SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stop = StopRequest()
        stop.install()
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            assert stop.signum == signal.SIGINT
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
        finally:
            stop.restore()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # the handler before is back
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_non_finite_stop_has_its_own_exit_code(monkeypatch, tmp_path, capsys):
    def nan(*args, **kwargs):
        raise NonFiniteError(7, "D loss")
    monkeypatch.setattr(sys.modules["gantricks.train"], "train", nan)
    assert main(["train", "--out", str(tmp_path / "r"), *SMALL]) == 3
    assert capsys.readouterr().err.strip() == "gantricks: error: non-finite D loss at step 7"


def test_a_rejected_checkpoint_is_named_set_aside_and_not_counted(tmp_path):
    """A checkpoint that is not weights only is refused as such (not "corrupt"), renamed NAME.rejected on
    resume, and does not take the place of a good one among the newest --keep-checkpoints."""
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    run = tmp_path / "run"
    args = ["train", "--out", str(run), *SMALL, "--eval-every", "0", "--checkpoint-every", "20",
            "--keep-checkpoints", "3"]
    assert main([*args, "--steps", "40"]) == 0
    bad = run / "checkpoints" / "step-00000050.pt"
    torch.save({"gan": Payload(), "step": 50}, bad)
    with pytest.warns(UserWarning, match="refused: it holds objects other than tensors.*set aside"):
        assert main([*args, "--steps", "80", "--resume"]) == 0
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step-00000040.pt", "step-00000060.pt",
                                                                       "step-00000080.pt"]
    assert (run / "checkpoints" / "step-00000050.pt.rejected").exists()
    # none usable: nothing is set aside, so a second --resume fails the same way instead of starting over
    for p in list_checkpoints(run / "checkpoints"):
        p.write_bytes(b"garbage")
    for _ in range(2):
        with pytest.warns(UserWarning, match="corrupt or truncated"):
            assert main([*args, "--steps", "100", "--resume"]) == 2
        assert len(list_checkpoints(run / "checkpoints")) == 3


def test_sample_streams_more_than_one_chunk_to_npy(trained, tmp_path, monkeypatch, capsys):
    """25,000 samples, made 10,000 at a time and written as made: the same numbers as gan.sample, and the
    whole array is never held (gan.sample, which returns it whole, is not called)."""
    from gantricks import cli
    from gantricks.gan import GAN
    from gantricks.train import open_run

    _, gan, _, _ = open_run(trained)
    expected = gan.sample(25_000, generator=torch.Generator().manual_seed(3)).numpy()
    assert cli.SAMPLE_CHUNK < 25_000
    sizes = []
    original = GAN.sample_batches

    def batches(self, *args, **kwargs):
        for b in original(self, *args, **kwargs):
            sizes.append(len(b))
            yield b
    monkeypatch.setattr(GAN, "sample", lambda *a, **k: pytest.fail("sample holds every sample at once"))
    monkeypatch.setattr(GAN, "sample_batches", batches)
    out = tmp_path / "s.npy"
    assert main(["sample", str(trained), "-n", "25000", "--seed", "3", "--out", str(out)]) == 0
    assert sizes == [10_000, 10_000, 5_000]
    np.testing.assert_array_equal(np.load(out), expected)
    assert not list(tmp_path.glob(".s.npy.tmp*"))


def test_list_name_shows_options_types_defaults_and_paper(capsys):
    assert main(["list", "r1"]) == 0
    out = capsys.readouterr().out
    assert "trick r1" in out and "Mescheder" in out
    assert re.search(r"gamma\s+float\s+default 10.0", out) and re.search(r"every\s+int\s+default 1", out)


@pytest.mark.parametrize("command, words", [
    ("train", ["choices: stop, rollback", "choices: fp32, bf16", "choices: every, last", "(default: 1)"]),
    ("bench", ["seeds per cell and dataset (default: 3)", "(default: the protocol's, 10,000 for collapse, else 20,000)", "runs trained at once"]),
])
def test_help_shows_defaults_and_choices(command, words, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for word in words:
        assert word in out, word


def test_progress_to_a_file_is_lines_not_carriage_returns(tmp_path, capsys):
    from gantricks.train import train

    train(TrainConfig(generator="mlp:width=16,depth=2", discriminator="mlp:width=16,depth=2", batch_size=32,
                      steps=40, eval_every=0, eval_samples=200, progress=True), tmp_path / "r")
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "r: step 40/40" in err.splitlines()[-1] and 2 <= len(err.splitlines()) <= 25


def test_progress_lines_say_when_their_losses_are_of_an_earlier_step(tmp_path, capsys):
    """A line every 2 steps, a log every 10: the lines between logs show the last logged values and say
    from which step, and a logged step's line shows its own values."""
    import json

    from gantricks.train import train

    train(TrainConfig(generator="mlp:width=16,depth=2", discriminator="mlp:width=16,depth=2", batch_size=32,
                      steps=40, log_every=10, eval_every=0, eval_samples=200, progress=True), tmp_path / "r")
    lines = capsys.readouterr().err.splitlines()
    logged = {r["step"]: r for r in map(json.loads, (tmp_path / "r" / "metrics.jsonl").read_text().splitlines())
              if "d_loss" in r}
    at = {int(line.split("step ")[1].split("/")[0]): line for line in lines if ": step " in line}
    assert "(logged at step" not in at[20] and f"d_loss={logged[20]['d_loss']:.3f}" in at[20]
    assert at[24].endswith("(logged at step 20)") and f"d_loss={logged[20]['d_loss']:.3f}" in at[24]


def test_train_runs_on_the_configured_threads_and_puts_them_back(tmp_path):
    from gantricks.train import train

    seen = []
    torch.set_num_threads(2)
    try:
        train(TrainConfig(generator="mlp:width=16,depth=2", discriminator="mlp:width=16,depth=2", batch_size=32,
                          steps=3, eval_every=0, eval_samples=200, progress=False, threads=1), tmp_path / "r",
              on_step=lambda gan, logs: seen.append(torch.get_num_threads()))
        assert seen == [1, 1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_bench_report_says_n_a_for_the_spread_of_one_seed():
    from gantricks.bench import _fmt, mean_se

    assert _fmt(mean_se([7.0]), 1) == "7.0±n/a"
    assert _fmt(mean_se([6.0, 8.0]), 1) == "7.0±1.0"


def test_an_api_error_is_a_config_error_too():
    """API users catching ValueError for bad arguments keep doing so."""
    import gantricks as gt

    with pytest.raises(ConfigError):
        gt.GAN(*_tiny(), z_dim=0)
