"""benchmarks/monitor_accuracy.py: the monitor's evaluation rule replayed on recorded evaluations is the rule
the training loop ran (it raises the flags the runs recorded), and its precision and recall are counted right."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "collapse-10000.jsonl"


def _runs():
    return [json.loads(line) for line in RESULTS.read_text().splitlines()]


def test_replay_raises_the_flags_the_runs_raised_live():
    import monitor_accuracy

    runs = _runs()
    assert len(runs) >= 20
    for run in runs:
        live = [(f["step"], f["flag"]) for f in run["flags"] if f["flag"] == "mode-collapse"]
        # each run was trained with the monitor's threshold of then: 0.3, or 0.6 since 2026-12-01 (9j's runs
        # and 9n's); the replay must give its live flags with one of them
        # A run stopped and resumed from a checkpoint written before checkpoints kept the monitor's state (two
        # spectral-norm ring runs here) restarted its monitor at that evaluation k, so a standing flag was raised
        # again there: its replay is evals[:k] and evals[k:] each from a fresh monitor (k = 0: never resumed)
        evals = run["evals"]
        replays = [monitor_accuracy.raised_flags(evals[:k], collapse_diversity=t)
                   + monitor_accuracy.raised_flags(evals[k:], collapse_diversity=t)
                   for t in (0.3, 0.6) for k in range(len(evals))]
        assert live in replays, (run["cell"], run["dataset"], run["seed"], live, replays[::len(evals)])
        assert len(monitor_accuracy.replay(run)) == len(run["evals"])


def _run(ratios, counts):
    return {"dataset": "ring8", "evals": [{"step": 100 * (i + 1), "diversity_ratio": r, "mode_counts": c,
                                           "modes_covered": sum(x > 0 for x in c), "modes": len(c),
                                           "high_quality_pct": 10.0, "samples": 2500}
                                          for i, (r, c) in enumerate(zip(ratios, counts))]}


def test_score_counts_by_hand():
    import monitor_accuracy

    collapsed, spread = [50, 0, 0, 0, 0, 0, 0, 0], [30] * 8
    runs = [_run([0.1, 0.1, 0.9], [collapsed, collapsed, spread]),   # TP, TP, TN
            _run([0.9, 0.1, 0.1], [collapsed, spread, collapsed]),   # FN (onset 100), FP (first flag: 100 late), TP
            _run([0.9, 0.9], [spread, spread])]                      # TN, TN
    s = monitor_accuracy.score(runs, collapse_diversity=0.3)
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (3, 1, 1, 3)
    assert s["precision"] == pytest.approx(3 / 4) and s["recall"] == pytest.approx(3 / 4)
    assert s["median_delay"] == 50 and s["runs_collapsed_never_flagged"] == 0      # delays 0 and 100
    # the diversity rule never fires; the partial-collapse rule does where 7 modes are empty twice running
    partial = monitor_accuracy.score(runs, collapse_diversity=0.05)
    assert (partial["tp"], partial["fp"], partial["runs_collapsed_never_flagged"]) == (1, 0, 1)
    assert partial["of_them_other_failure_flagged"] == 0
    runs[1]["flags"] = [{"step": 150, "flag": "discriminator-wins"}, {"step": 160, "flag": "oscillation"}]
    assert monitor_accuracy.score(runs, collapse_diversity=0.05)["of_them_other_failure_flagged"] == 1
    runs[1]["flags"] = [{"step": 160, "flag": "oscillation"}]                  # hopping is not a failure named
    assert monitor_accuracy.score(runs, collapse_diversity=0.05)["of_them_other_failure_flagged"] == 0


def test_script_runs_on_the_checked_in_results(capsys):
    import monitor_accuracy

    monitor_accuracy.main([str(RESULTS), "--by-cell"])
    out = capsys.readouterr().out
    assert "chosen on ring8" in out and "| grid25 (held out) | default 0.6 |" in out and "| ring8 | fitted" in out
    assert "| ring8 | baseline | 10 | 100 |" in out and "| grid25 | ttur |" in out


def test_by_cell_scores_each_cell_of_a_dataset_alone(capsys):
    """--by-cell: one row per dataset and cell, its counts those of that cell's runs only."""
    import monitor_accuracy

    collapsed, spread = [50, 0, 0, 0, 0, 0, 0, 0], [30] * 8
    a = dict(_run([0.1, 0.9], [collapsed, spread]), cell="a")           # TP, TN
    b = dict(_run([0.1, 0.9, 0.9], [spread, collapsed, spread]), cell="b")   # FP, FN, TN
    monitor_accuracy.cell_table([a, b, dict(a, seed=1)], "sharp")
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ring8 |")]
    assert rows == ["| ring8 | a | 2 | 4 | 2 | 2 | 0 | 0 | 1.00 | 1.00 | 0 |",
                    "| ring8 | b | 1 | 3 | 1 | 1 | 1 | 1 | 0.00 | 0.00 | 1 |"]


def test_replay_of_a_fresh_run_raises_its_live_flags(tmp_path):
    """A run trained now: replaying its metrics.jsonl evaluations raises the mode-collapse flags it raised."""
    import monitor_accuracy
    from gantricks.bench import plan
    from gantricks.train import train

    [job] = plan("grid25", ["baseline"], 1, 600, tmp_path, "collapse")
    train(job.config().replace(eval_every=100, checkpoint_every=0, sample_plots="last"), tmp_path / "run",
          overwrite=True)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    live = [(r["step"], r["flag"]) for r in records if r["kind"] == "flag" and r["flag"] == "mode-collapse"]
    assert live and monitor_accuracy.raised_flags([r for r in records if r["kind"] == "eval"]) == live


def test_mass_truth_tells_a_thin_spread_from_a_blob():
    """Few sharp samples everywhere: collapsed by the sharp-sample truth, not by mass; one blob: by both."""
    import monitor_accuracy

    thin = {"mode_counts": [3, 0, 0, 1, 0, 0, 2, 0], "nearest_counts": [300, 310, 290, 305, 295, 300, 310, 290]}
    blob = {"mode_counts": [40, 0, 0, 0, 0, 0, 0, 0], "nearest_counts": [2400, 20, 10, 5, 5, 10, 20, 30]}
    half = {"mode_counts": [9] * 4 + [0] * 4, "nearest_counts": [500] * 4 + [0] * 4}     # KL exactly log 2
    assert [monitor_accuracy.TRUTHS["sharp"](e) for e in (thin, blob, half)] == [True, True, True]
    assert [monitor_accuracy.TRUTHS["mass"](e) for e in (thin, blob, half)] == [False, True, True]
    run = {"evals": [dict(thin, step=1)]}
    assert monitor_accuracy.has_truth(run, "mass") and not monitor_accuracy.has_truth({"evals": [{"step": 1}]}, "mass")


def test_a_missing_results_file_is_one_line_and_exit_2(capsys):
    import monitor_accuracy

    with pytest.raises(SystemExit) as exit_:
        monitor_accuracy.main(["/no/such/results.jsonl"])
    assert exit_.value.code == 2 and "no such results file: /no/such/results.jsonl" in capsys.readouterr().err


def _good_line() -> dict:
    return {"cell": "baseline", "dataset": "ring8", "seed": 0, "steps": 100, "error": None,
            "evals": [{"step": 100, "modes_covered": 1, "modes": 8, "high_quality_pct": 60.0,
                       "mode_counts": [50, 0, 0, 0, 0, 0, 0, 0], "diversity_ratio": 0.1, "samples": 2500}]}


def _bad(make):
    lines = [_good_line()]
    make(lines)
    return "".join(x if isinstance(x, str) else json.dumps(x) + "\n" for x in lines)


@pytest.mark.parametrize("text, words", [
    ("", "no run with evaluations"),
    (json.dumps({"cell": "a", "error": "NonFiniteError: x", "evals": []}) + "\n", "no run with evaluations"),
    (_bad(lambda ls: ls.insert(0, "1\n")), "line 1: JSON, but not an object (a number)"),
    (_bad(lambda ls: ls.insert(0, "{garbage\n")), "line 1: not JSON"),
    (_bad(lambda ls: ls[0]["evals"][0].pop("step")), "'step' is null"),
    (_bad(lambda ls: ls[0]["evals"][0].update(step=float("nan"))), "'step' is NaN"),
    (_bad(lambda ls: ls[0]["evals"][0].pop("mode_counts")), "no list of 'mode_counts'"),
    (_bad(lambda ls: ls[0].pop("dataset")), "no 'dataset'"),
    (_bad(lambda ls: ls[0].update(evals="x")), "'evals' is not a list"),
    (_bad(lambda ls: ls[0]["evals"][0].update(diversity_ratio="abc")), "'diversity_ratio' \"abc\""),
])
def test_a_results_file_it_cannot_score_is_one_line_and_exit_2(text, words, tmp_path, capsys):
    import monitor_accuracy

    path = tmp_path / "r.jsonl"
    path.write_text(text)
    with pytest.raises(SystemExit) as exit_:
        monitor_accuracy.main([str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and words in err[0], err


def test_a_folder_or_bytes_that_are_not_text_are_one_line_and_exit_2(tmp_path, capsys):
    import monitor_accuracy

    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\n")
    for path, words in ((tmp_path, "is a folder, not a results file"), (tmp_path / "bin.jsonl", "not UTF-8")):
        with pytest.raises(SystemExit) as exit_:
            monitor_accuracy.main([str(path)])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and len(err) == 1 and words in err[0], err


def test_a_last_line_cut_by_a_kill_is_left_out(tmp_path, capsys):
    import monitor_accuracy

    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(_good_line()) + "\n" + json.dumps(_good_line())[:30])
    assert len(monitor_accuracy.load([path])) == 1
