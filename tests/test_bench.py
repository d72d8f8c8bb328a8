"""`gantricks bench` on the mixtures: the plan covers every trick and scheme, a killed benchmark resumes
(finished runs skipped, the run in flight continued from its checkpoint) and ends with the same results
as one that was never killed, in worker processes or not."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gantricks.bench import cells, plan, run_bench
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
    assert len(jobs) == (len(table) - 1) * 2 * 10          # madgan-sharp is recommended's second name: run once
    assert "recommended" in {j.cell for j in jobs} and "madgan-sharp" not in {j.cell for j in jobs}
    assert table["madgan-sharp"] == table["recommended"]
    assert {j.cell for j in plan("mixtures", ["madgan-sharp"], 1, 10, tmp_path, "fast")} == {"madgan-sharp"}
    assert {(j.dataset, j.seed) for j in jobs if j.cell == "baseline"} == {(d, s) for d in ("ring8", "grid25")
                                                                        for s in range(10)}


def _results(out: Path) -> dict:
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    keys = [(r["cell"], r["dataset"], r["seed"]) for r in lines]
    assert len(keys) == len(set(keys)), "a finished run was run again"
    return {k: {m: r[m] for m in METRICS} for k, r in zip(keys, lines)}


@pytest.mark.timeout(600)
def test_a_killed_bench_resumes_and_ends_as_an_uninterrupted_one(tmp_path):
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

    clean = run_bench("mixtures", 2, 300, tmp_path / "clean", workers=1, only=["baseline", "ttur"], progress=False,
                      protocol="fast")
    # the same numbers: runs cut mid-way resumed exactly, and a worker process that served several runs
    # trained each as a fresh one would
    assert {(r["cell"], r["dataset"], r["seed"]): {m: r[m] for m in METRICS} for r in clean} == after
