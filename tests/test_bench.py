"""`gantricks bench` on the mixtures: the plan covers every trick and scheme, a killed benchmark resumes
(finished runs skipped, the run in flight continued from its checkpoint) and ends with the same results
as one that was never killed, in worker processes or not."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import main_in_process
from gantricks import errors, jsonl
from gantricks.bench import cells, load_results, plan, run_bench
from gantricks.registry import schemes, tricks

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--suite", "mixtures", "--protocol", "fast", "--only", "baseline,ttur", "--seeds", "2", "--steps", "300"]
METRICS = ("modes_covered", "high_quality_pct", "reverse_kl", "mode_counts")


def test_the_plan_has_the_baseline_every_trick_and_scheme_and_the_recipes(tmp_path):
    table = cells()
    assert {"baseline", "recommended"} <= set(table)
    for name in tricks.names():
        assert name in table, name
    for name in schemes.names():
        assert name in table or name == "pix2pix" or name == "standard", name   # pix2pix needs paired data
    jobs = plan("mixtures", None, 10, 20000, tmp_path, "fast")
    images_only = {"diffaugment", "ada", "cr"}               # augmentations of images: no 2-D cell
    # madgan-sharp is recommended's second name: run once
    assert len(jobs) == (len(table) - 1 - len(images_only)) * 2 * 10
    assert images_only <= set(table) and not images_only & {j.cell for j in jobs}
    assert "recommended" in {j.cell for j in jobs} and "madgan-sharp" not in {j.cell for j in jobs}
    assert table["madgan-sharp"] == table["recommended"]
    assert {j.cell for j in plan("mixtures", ["madgan-sharp"], 1, 10, tmp_path, "fast")} == {"madgan-sharp"}
    assert {(j.dataset, j.seed) for j in jobs if j.cell == "baseline"} == {(d, s) for d in ("ring8", "grid25")
                                                                        for s in range(10)}


def _line(cell: str) -> str:
    return json.dumps({"cell": cell, "dataset": "ring8", "seed": 0, "steps": 10})


def test_a_line_cut_by_a_kill_is_dropped_and_the_next_line_kept(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(_line("a") + "\n" + _line("b")[:20])      # killed mid-write
    with jsonl.open_to_append(path) as f:
        f.write(_line("c") + "\n")
    assert [r["cell"] for r in load_results(path)] == ["a", "c"]
    with jsonl.open_to_append(path) as f:                                            # a whole file is kept whole
        f.write(_line("d") + "\n")
    assert [r["cell"] for r in load_results(path)] == ["a", "c", "d"]
    path.write_text(path.read_text() + _line("e"))        # whole but for its newline: done, kept
    with jsonl.open_to_append(path) as f:
        f.write(_line("f") + "\n")
    assert [r["cell"] for r in load_results(path)] == ["a", "c", "d", "e", "f"]


def test_a_run_killed_before_its_config_was_renamed_starts_afresh(tmp_path):
    """SIGKILL between writing config.toml.tmp and renaming it leaves the lock and that file: the rerun trains
    the run, not records "not a gantricks run folder" as its result."""
    run = tmp_path / "b" / "runs" / "fast" / "baseline" / "ring8" / "seed0"
    run.mkdir(parents=True)
    (run / ".lock").write_text("12345\n")
    (run / "config.toml.tmp").write_text("seed = 0\n")
    [r] = run_bench("ring8", 1, 4, tmp_path / "b", only=["baseline"], progress=False, protocol="fast")
    assert r["error"] is None and r["modes_covered"] is not None


def _results(out: Path) -> dict:
    lines = load_results(out / "results.jsonl")       # a line cut by the kill is not a result
    keys = [(r["cell"], r["dataset"], r["seed"]) for r in lines]
    assert len(keys) == len(set(keys)), "a finished run was run again"
    return {k: {m: r[m] for m in METRICS} for k, r in zip(keys, lines)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """ARGS's bench, never interrupted, in the test's own process: the numbers every stopped, killed and
    resumed bench below must end with."""
    lines = run_bench("mixtures", 2, 300, tmp_path_factory.mktemp("uninterrupted"), workers=1,
                      only=["baseline", "ttur"], progress=False, protocol="fast")
    return {(r["cell"], r["dataset"], r["seed"]): {m: r[m] for m in METRICS} for r in lines}


@pytest.mark.timeout(600)
def test_a_killed_bench_resumes_and_ends_as_an_uninterrupted_one(tmp_path, uninterrupted):
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "gantricks", "bench", *ARGS, "--workers", "2", "--out", str(killed)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    results = killed / "results.jsonl"
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if results.exists() and len(results.read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)        # the bench and its workers, mid-run
        proc.wait()
    before = _results(killed)
    assert 2 <= len(before) < 8, "kill the bench while runs remain"

    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _results(killed)
    assert len(after) == 8 and all(after[k] == v for k, v in before.items())
    assert (killed / "report.md").exists() and (killed / "report.html").exists()
    assert "| baseline |" in (killed / "report.md").read_text()
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert all(r["machine"]["torch"] == torch.__version__ and r["machine"]["cpu_capability"] for r in lines)
    # the same numbers: runs cut mid-way resumed exactly, and a worker process that served several runs
    # trained each as a fresh one would
    assert after == uninterrupted


def _stop_and_resume(out: Path, args: list[str], workers: int, most: int = 3) -> dict:
    """Start a bench, SIGTERM it (alone) once its first line is written, check how it stopped (at most ``most``
    lines written), rerun it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "gantricks", "bench", *args, "--workers", str(workers), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results = out / "results.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (results.exists() and results.read_text()):
        time.sleep(0.05)

    def training() -> bool:              # a run not finished has logged a step: its loop holds the signals
        finished = {json.loads(line)["run"] for line in results.read_text().splitlines()}
        return any(m.stat().st_size for m in (out / "runs").rglob("metrics.jsonl") if str(m.parent) not in finished)
    while time.time() < deadline and proc.poll() is None and not training():
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)     # to the bench alone: it passes the signal on to its workers
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-2000:]
    assert "bench stopped by SIGTERM" in err and "rerun the same command" in err and "Traceback" not in err
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert 1 <= len(lines) <= most and not any(r["error"] for r in lines), "a stopped run is not a result"
    finished = {Path(r["run"]).name + Path(r["run"]).parent.parent.name for r in lines}
    unfinished = [p for p in (out / "runs").rglob("seed*") if p.name + p.parent.parent.name not in finished]
    assert any(list((p / "checkpoints").glob("*.pt")) for p in unfinished), "a stopped run left its checkpoint"
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not any(json.loads(line)["error"] for line in results.read_text().splitlines())
    return _results(out)


@pytest.mark.timeout(600)
def test_a_bench_asked_to_stop_writes_checkpoints_no_lines_and_resumes(tmp_path, uninterrupted):
    """SIGTERM to the bench (a scheduler's stop), with its runs in worker processes or in its own: the runs under
    way write their checkpoints and stop, no line is written for them (a stopped run is not a result), the bench
    exits 143, and the same command then ends with the numbers of an uninterrupted bench (ARGS's on ring8)."""
    args = ["--suite", "ring8", *ARGS[2:]]
    clean = {key: value for key, value in uninterrupted.items() if key[1] == "ring8"}
    assert len(clean) == 4
    for workers in (2, 1):
        assert _stop_and_resume(tmp_path / f"w{workers}", args, workers) == clean, workers


@pytest.mark.parametrize("when", ["while the second run is set up", "between the runs"])
def test_a_bench_in_its_own_process_asked_to_stop_outside_a_runs_loop_stops_with_one_line(
        tmp_path, monkeypatch, uninterrupted, when):
    """--workers 1: a SIGTERM while a run is being set up (before its loop takes the signals) or between two
    runs used to kill the bench (exit -15, no line said why). Now the bench's own handler holds it: the run
    being set up takes it over and stops before its first step; between runs no run starts."""
    import importlib

    import gantricks.bench as bench_module
    from gantricks.errors import Stopped

    train_module = importlib.import_module("gantricks.train")     # the package's `train` is the function

    def sigterm():
        os.kill(os.getpid(), signal.SIGTERM)       # taken by a handler, not the default action

    if when == "between the runs":
        original = bench_module._run_unit

        def run_unit(unit):
            value = original(unit)
            sigterm()
            return value
        monkeypatch.setattr(bench_module, "_run_unit", run_unit)
    else:
        original = train_module.build_gan
        calls = []

        def build_gan(config, *args, **kwargs):
            if config.seed == 1 and not calls:      # the second run's, before its loop
                calls.append(config)
                sigterm()
            return original(config, *args, **kwargs)
        monkeypatch.setattr(train_module, "build_gan", build_gan)
    handler = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "b"
    with pytest.raises(Stopped, match="bench stopped by SIGTERM; the unfinished runs wrote their checkpoints"):
        run_bench("ring8", 2, 300, out, workers=1, only=["baseline"], progress=False, protocol="fast")
    assert signal.getsignal(signal.SIGTERM) == handler
    assert [r["seed"] for r in load_results(out / "results.jsonl")] == [0]
    # not trained on to its end (a line) nor left half-made: a run stopped before its first step removes its folder
    assert not (out / "runs" / "fast" / "baseline" / "ring8" / "seed1").exists()
    monkeypatch.undo()
    run_bench("ring8", 2, 300, out, workers=1, only=["baseline"], progress=False, protocol="fast")
    assert _results(out) == {k: v for k, v in uninterrupted.items() if k[0] == "baseline" and k[1] == "ring8"}


@pytest.mark.timeout(600)
def test_seeds_side_by_side_asked_to_stop_write_checkpoints_and_resume_alone(tmp_path):
    """--vectorize: a cell's two seeds train as one unit; SIGTERM stops the unit under way at a checkpoint of its
    own (before, the signal killed the bench running it), and the rerun finishes its seeds alone. (In a worker
    process the unit raises the same Stopped, which comes back as a run's does.)"""
    args = ["--suite", "ring8", "--protocol", "fast", "--only", "baseline,ttur", "--seeds", "2", "--steps", "400",
            "--vectorize"]
    done = _stop_and_resume(tmp_path / "v", args, 1, most=2)
    assert len(done) == 4
    lines = [json.loads(line) for line in (tmp_path / "v" / "results.jsonl").read_text().splitlines()]
    assert any(r["vectorized"] == 2 for r in lines) and any(r["vectorized"] == 0 for r in lines)


def test_set_applies_over_every_cell_and_keeps_its_runs_apart(tmp_path):
    jobs = plan("ring8", ["baseline", "recommended"], 1, 40, tmp_path, "fast",
                settings=["lr-decay-start=0.25", "lr_g=2e-4"])
    by_cell = {j.cell: j for j in jobs}
    assert by_cell["recommended"].config().lr_decay_start == 0.25        # over the recipe's 0.5
    assert by_cell["recommended"].config().lr_d == 1e-3                  # the recipe's own, not set
    assert by_cell["baseline"].config().lr_g == 2e-4
    # a trick as `gantricks list` prints a recipe's, in brackets, or bare: the same runs
    bracketed, bare = (plan("ring8", ["pacgan"], 1, 40, tmp_path, "fast", settings=[f"tricks={value}"])[0]
                       for value in ("[pacgan:m=4]", "pacgan:m=4"))
    assert bracketed.config().tricks == bare.config().tricks == ("pacgan:m=4",)
    assert bracketed.key == bare.key and bracketed.out == bare.out
    assert plan("ring8", ["pacgan"], 1, 40, tmp_path, "fast", settings=["tricks=[]"])[0].config().tricks == ()
    plain = plan("ring8", ["baseline"], 1, 40, tmp_path, "fast")[0]
    assert plain.key != by_cell["baseline"].key and plain.out != by_cell["baseline"].out

    out = tmp_path / "b"
    first = run_bench("ring8", 1, 40, out, only=["baseline"], progress=False, protocol="fast",
                      settings=["lr_g=2e-4"])
    assert [r["set"] for r in first] == ["lr_g=2e-4"]
    # the same bench without --set does not take the set run for its own, and the set run is not redone
    second = run_bench("ring8", 1, 40, out, only=["baseline"], progress=False, protocol="fast")
    assert len(second) == 1 and "set" not in second[0]
    again = run_bench("ring8", 1, 40, out, only=["baseline"], progress=False, protocol="fast", settings=["lr_g=2e-4"])
    assert again == first
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    assert "Over every cell's own settings: lr_g=2e-4." in (out / "report.md").read_text()


@pytest.mark.parametrize("setting, message", [
    ("lr_g", "--set takes KEY=VALUE, got 'lr_g'"),
    ("seed=3", "--set seed: the bench sets seed itself; choose how many with --seeds"),
    ("no_such_key=1", "unknown key 'no_such_key'"),
    ("lr_decay_start=2", "lr_decay_start must be in [0, 1), got 2.0"),
    ("tricks=[ema r1]", "--set tricks: a value without spaces, got '[ema r1]'; --set takes one trick"),
    ("lr_g= 2e-4", "--set lr_g: a value without spaces, got ' 2e-4'"),
    ("tricks=[nosuch]", "unknown trick 'nosuch'"),
])
def test_a_bad_set_is_one_line_and_exit_2_before_any_run(tmp_path, capsys, setting, message):
    rc, err = main_in_process(["bench", "--suite", "ring8", "--only", "baseline", "--seeds", "1", "--steps", "10",
                    "--set", setting, "--out", str(tmp_path / "b")], capsys)
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "b" / "results.jsonl").exists()


def test_workers_exit_cleanly(tmp_path):
    """A bench in worker processes ends without the resource tracker's "leaked semaphore" warning (it came
    when the pool's workers were terminated rather than let finish)."""
    done = subprocess.run([sys.executable, "-m", "gantricks", "bench", "--suite", "mixtures", "--protocol", "fast",
                           "--only", "baseline", "--seeds", "2", "--steps", "30", "--workers", "2",
                           "--out", str(tmp_path / "b")],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(_results(tmp_path / "b")) == 4
    assert "leaked" not in done.stderr, done.stderr[-2000:]


def test_a_second_bench_on_the_same_folder_is_refused(tmp_path, capsys):
    """One bench per folder: a second one would train the same runs and interleave their results lines."""
    from gantricks.cli import main
    from gantricks.errors import RunFolderBusy
    from gantricks.runlock import RunLock

    held = RunLock.acquire(tmp_path / "b")           # another process's lock (flock is per open file)
    held.write_pid()
    try:
        with pytest.raises(RunFolderBusy, match="in use by another gantricks process"):
            run_bench("ring8", 1, 2, tmp_path / "b", only=["baseline"], progress=False, protocol="fast")
        assert main(["bench", "--suite", "ring8", "--protocol", "fast", "--only", "baseline", "--seeds", "1",
                     "--steps", "2", "--out", str(tmp_path / "b")]) == 2
        assert "in use by another gantricks process" in capsys.readouterr().err
        assert not (tmp_path / "b" / "results.jsonl").exists()
    finally:
        held.release()
    assert run_bench("ring8", 1, 2, tmp_path / "b", only=["baseline"], progress=False, protocol="fast")


def _children(pid: int) -> list[int]:
    """The bench's pool workers (not multiprocessing's resource tracker)."""
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.timeout(300)
def test_a_worker_killed_alone_ends_the_bench_with_one_line_and_a_rerun_finishes(tmp_path):
    """SIGKILL to one worker (the OOM killer's way): its run never reports; the bench must not wait for it for
    ever, but stop with one line and exit 2, and the same command then finishes."""
    out = tmp_path / "b"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "gantricks", "bench", "--suite", "ring8", "--protocol", "fast", "--only", "baseline",
           "--seeds", "2", "--steps", "1000", "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    lock = out / "runs" / "fast" / "baseline" / "ring8" / "seed0" / ".lock"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.05)
        os.kill(int(lock.read_text()), signal.SIGKILL)          # the worker training seed 0
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 2, err[-2000:]
    assert "died (signal 9) during a run" in err and "rerun the same command" in err and "Traceback" not in err
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = load_results(out / "results.jsonl")
    assert sorted(r["seed"] for r in lines) == [0, 1] and not any(r["error"] for r in lines)


@pytest.mark.timeout(300)
def test_an_error_in_one_workers_run_stops_the_other_and_is_one_line(tmp_path):
    """A GantricksError in a run (here: its folder held by another process) ends the bench with that line and
    exit 2, the other worker's run stopped rather than left training (at a checkpoint if it had begun); freed,
    it finishes."""
    from gantricks.runlock import RunLock

    out = tmp_path / "b"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "gantricks", "bench", "--suite", "ring8", "--protocol", "fast", "--only", "baseline",
           "--seeds", "2", "--steps", "1000", "--workers", "2", "--out", str(out)]
    held = RunLock.acquire(out / "runs" / "fast" / "baseline" / "ring8" / "seed0")
    held.write_pid()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    finally:
        held.release()
    assert done.returncode == 2, done.stderr[-2000:]
    assert "in use by another gantricks process" in done.stderr and "Traceback" not in done.stderr, done.stderr
    # no line: seed 1 was stopped, not trained to its end (a run that ends writes its line, stop or not)
    assert not (out / "results.jsonl").exists() or not (out / "results.jsonl").read_text().strip()
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=200)
    assert again.returncode == 0, again.stderr[-2000:]
    assert sorted(r["seed"] for r in load_results(out / "results.jsonl")) == [0, 1]


@pytest.mark.timeout(300)
def test_a_bench_killed_alone_stops_its_workers_at_a_checkpoint(tmp_path):
    """SIGKILL to the bench alone: its workers must not train on without it (holding run folders a rerun needs,
    and taking the runs still queued); each writes its run's checkpoint and exits."""
    out = tmp_path / "b"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "gantricks", "bench", "--suite", "ring8", "--protocol", "fast", "--only", "baseline",
           "--seeds", "4", "--steps", "20000", "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    runs = out / "runs" / "fast" / "baseline" / "ring8"
    metrics = [runs / f"seed{s}" / "metrics.jsonl" for s in (0, 1)]
    deadline = time.time() + 120
    while time.time() < deadline and not all(m.exists() and m.stat().st_size for m in metrics):
        time.sleep(0.05)
    workers = _children(proc.pid)
    proc.kill()
    proc.wait()
    try:
        assert len(workers) == 2
        deadline = time.time() + 60
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "a worker trains on without its bench"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)       # whatever of the bench's group is left
        except ProcessLookupError:
            pass
    assert all(list((runs / f"seed{s}" / "checkpoints").glob("*.pt")) for s in (0, 1)), "each wrote its checkpoint"
    assert not (runs / "seed2").exists() and not (runs / "seed3").exists(), "the runs still queued never start"


# --- bad input to a bench: one line, exit 2, nothing of the user's touched ---------------------------------
TINY = ["bench", "--suite", "ring8", "--protocol", "fast", "--only", "baseline", "--seeds", "1", "--steps", "4",
        "--workers", "1"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-run bench folder (4 steps)."""
    out = tmp_path_factory.mktemp("bench") / "b"
    run_bench("ring8", 1, 4, out, only=["baseline"], progress=False, protocol="fast")
    return out


def _files(root: Path) -> dict:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("make, words", [
    (lambda t: ["--out", str(t / "b"), "--only", ","], "--only names no cell"),
    (lambda t: ["--out", str(t / "b"), "--seeds", "100000"], "at most 10,000"),
    (lambda t: ["--out", str(t / "b"), "--set", "seed=3"], "choose how many with --seeds"),
    (lambda t: ["--out", ""], "--out is empty"),
    (lambda t: ["--out", str(t / "b"), "--protocol", ""], "--protocol is empty"),
    (lambda t: ["--out", str(t / "b"), "--set", "generator=nosuch"], "nosuch"),
])
def test_bad_bench_input_is_one_line_and_exit_2(make, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = main_in_process([*TINY, *make(tmp_path)], capsys)
    assert rc == 2 and len(err) == 1 and words in err[0], err
    assert not (tmp_path / "b" / "results.jsonl").exists() or not load_results(tmp_path / "b" / "results.jsonl")
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "b"])             # nothing written where the user is


def test_a_bench_refuses_a_folder_of_someone_s_files_and_a_training_run(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("report.md", "summary.json", "notes.txt", ".lock"):
        (mine / name).write_text("precious")
    before = _files(mine)
    rc, err = main_in_process([*TINY, "--out", str(mine)], capsys)
    assert rc == 2 and len(err) == 1 and "holds files that no bench wrote (notes.txt)" in err[0], err
    assert _files(mine) == before and sorted(p.name for p in mine.iterdir()) == sorted(p.name for p in before)
    run = tmp_path / "run"                                   # a training run's folder is not a bench's either
    run.mkdir()
    (run / "config.toml").write_text("steps = 4\n")
    rc, err = main_in_process([*TINY, "--out", str(run)], capsys)
    assert rc == 2 and "config.toml" in err[0]


def test_a_bench_replaces_its_report_files_rather_than_writing_through_links(finished, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(finished, out)
    target = tmp_path / "thesis.md"
    target.write_text("precious")
    (out / "report.md").unlink()
    (out / "report.md").symlink_to(target)
    run_bench("ring8", 1, 4, out, only=["baseline"], progress=False, protocol="fast")
    assert target.read_text() == "precious" and not (out / "report.md").is_symlink()
    table = (out / "report.md").read_text()
    assert "| baseline |" in table and "1/0" not in table      # a suite of one dataset: "1" seeds, not "1/0"


def test_a_damaged_bench_is_one_line_and_exit_2_and_keeps_everything(finished, tmp_path, capsys):
    run = Path("runs") / "fast" / "baseline" / "ring8" / "seed0"
    # a results line that is not a result
    out = tmp_path / "r"
    shutil.copytree(finished, out)
    with (out / "results.jsonl").open("a") as f:
        f.write("[1, 2]\n")
    before = _files(out)
    rc, err = main_in_process([*TINY, "--out", str(out)], capsys)
    assert rc == 2 and len(err) == 1 and "line 2: JSON, but not an object (a list)" in err[0], err
    assert _files(out) == before
    # another length in the same folder: its run folder holds the 4-step run
    out = tmp_path / "s"
    shutil.copytree(finished, out)
    rc, err = main_in_process([*TINY[:-4], "--steps", "6", "--workers", "1", "--out", str(out)], capsys)
    assert rc == 2 and len(err) == 1 and "holds a run of 4 steps, and this bench asks 6" in err[0], err
    # a run folder that lost its config but holds the user's files: nothing of it deleted
    out = tmp_path / "c"
    shutil.copytree(finished, out)
    (out / "results.jsonl").write_text("")
    (out / run / "config.toml").unlink()
    (out / run / "analysis.txt").write_text("precious")
    before = _files(out)
    rc, err = main_in_process([*TINY, "--out", str(out)], capsys)
    assert rc == 2 and len(err) == 1 and "but no config.toml" in err[0] and "analysis.txt" in err[0], err
    assert _files(out) == before and not load_results(out / "results.jsonl")


def test_a_cell_named_twice_runs_once(tmp_path):
    jobs = plan("ring8", ["baseline", "ttur", "baseline"], 2, 4, tmp_path, "fast")
    assert [j.cell for j in jobs] == ["baseline", "baseline", "ttur", "ttur"]


@pytest.mark.parametrize("err", [
    errors.ConfigError("bad config"),
    errors.CheckpointError("bad checkpoint"),
    errors.RunFolderBusy("busy"),
    errors.NonFiniteError(12, "D loss", " (try a smaller lr)"),
    errors.Stopped(15, "stopped"),
], ids=lambda e: type(e).__name__)
def test_every_error_a_run_raises_comes_back_whole_from_a_worker(err):
    """A worker's error crosses a pipe pickled: it must come back as itself (NonFiniteError once failed to
    unpickle, its constructor taking three arguments)."""
    import pickle
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and str(back) == str(err) and vars(back) == vars(err)
