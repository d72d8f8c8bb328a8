"""benchmarks/collapse_table.py: the rows of BENCHMARKS.md §9's tables, checked against the raw lines by hand."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "collapse-10000.jsonl"


def _lines(cell: str, dataset: str) -> list[dict]:
    out = []
    for text in RESULTS.read_text().splitlines():
        line = json.loads(text)
        if line["cell"] == cell and line["dataset"] == dataset:
            out.append(line)
    return out


def _by_hand(cell: str, dataset: str) -> list[str]:
    """The four cells of a mixture, computed here with plain loops from the definitions."""
    runs = _lines(cell, dataset)
    modes = [r["modes_covered"] for r in runs]
    n = len(modes)
    mean = sum(modes) / n
    se = math.sqrt(sum((m - mean) ** 2 for m in modes) / (n - 1)) / math.sqrt(n)
    hq = sum(r["high_quality_pct"] for r in runs) / n
    kls = [float(r["reverse_kl"]) for r in runs]
    if any(k == math.inf for k in kls):
        kl = "inf"
    else:
        kl_mean = sum(kls) / n
        kl = f"{kl_mean:.2f} ± {math.sqrt(sum((k - kl_mean) ** 2 for k in kls) / (n - 1)) / math.sqrt(n):.2f}"
    sharp = mass = 0
    for r in runs:
        last = r["evals"][-1]
        counts = last["mode_counts"]
        covered = sum(1 for c in counts if c > 0)
        p = [c / sum(counts) for c in counts if c > 0] if sum(counts) else []
        kl_last = sum(q * math.log(q * len(counts)) for q in p) if p else math.inf
        sharp += covered <= len(counts) / 2 or kl_last > math.log(2)
        near = last["nearest_counts"]
        pn = [c / sum(near) for c in near if c > 0]
        mass += sum(q * math.log(q * len(near)) for q in pn) >= math.log(2)
    return [f"{mean:.1f} ± {se:.1f} ({min(modes)}–{max(modes)})", f"{hq:.1f}", kl, f"{sharp} / {mass}"]


@pytest.mark.parametrize("cell", ["zcr", "mrgan"])
def test_a_cells_row_is_the_raw_lines_summed_by_hand(cell, capsys):
    import collapse_table

    assert collapse_table.main([str(RESULTS), "--cells", f"baseline,{cell}"]) == 0
    rows = capsys.readouterr().out.splitlines()
    row = [c.strip() for c in rows[3].strip("|").split("|")]
    assert row[0] == cell
    assert row[1:5] == _by_hand(cell, "ring8") and row[5:9] == _by_hand(cell, "grid25")
    cpu = sorted(r["cpu_s"] for d in ("ring8", "grid25") for r in _lines(cell, d))
    assert row[9] == f"{(cpu[9] + cpu[10]) / 2:.0f}" and row[10] == "10 / 10"
    # the baseline collapses in every run: "rescues" needs at most 2 of 10 collapsed, "partly" at most 7
    sharp = [int(c.split("/")[0]) for c in (row[4], row[8])]
    assert row[11:] == [("rescues" if s <= 2 else "partly" if s <= 7 else "no") for s in sharp]


def test_the_baseline_without_nearest_counts_has_no_mass_column_nor_a_verdict_on_itself(capsys):
    import collapse_table

    assert collapse_table.main([str(RESULTS), "--cells", "baseline"]) == 0
    row = [c.strip() for c in capsys.readouterr().out.splitlines()[2].strip("|").split("|")]
    assert row[4] == row[8] == "10 / —" and row[11:] == ["—", "—"]


def test_without_the_baseline_there_is_no_verdict_column(capsys):
    import collapse_table

    assert collapse_table.main([str(RESULTS), "--cells", "zcr"]) == 0
    header, _, row = capsys.readouterr().out.splitlines()
    assert "verdict" not in header and len(row.strip("|").split("|")) == 11


def test_per_seed_rows_give_each_evaluation(capsys):
    import collapse_table

    assert collapse_table.main([str(RESULTS), "--cells", "zcr", "--per-seed"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert len(rows) == 20 and rows[0].startswith("| zcr | ring8 | 0 |") and rows[10].startswith("| zcr | grid25 | 0 |")
    first = _lines("zcr", "ring8")[0]
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[4] == " ".join(str(e["modes_covered"]) for e in first["evals"])
    assert cells[5] == " ".join(f"{e['diversity_ratio']:.2f}" for e in first["evals"])
    last = first["evals"][-1]
    sharp = sum(1 for c in last["mode_counts"] if c) <= 4 or last["reverse_kl"] > math.log(2)
    assert cells[7].split(" / ")[0] == ("yes" if sharp else "no")


def test_a_run_read_twice_counts_once(tmp_path, capsys):
    import collapse_table

    lines = RESULTS.read_text().splitlines()
    zcr = [x for x in lines if json.loads(x)["cell"] == "zcr"]
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join(zcr + zcr[:1]) + "\n")
    assert collapse_table.main([str(twice)]) == 0
    out = capsys.readouterr()
    assert "10 / 10" in out.out and "line 21" in out.err and "already read" in out.err


def _line(**change) -> dict:
    line = json.loads(RESULTS.read_text().splitlines()[0])
    line.update(change)
    return line


@pytest.mark.parametrize("text, words", [
    ("{garbage\n", "line 1: not JSON"),
    (json.dumps({"cell": "a", "dataset": "ring8"}) + "\n", "no 'seed'"),
    (json.dumps(_line(modes_covered=None)) + "\n", "'modes_covered' is None, not a finite number"),
    (json.dumps(_line(high_quality_pct="nan")) + "\n", "'high_quality_pct' is \"nan\""),
    (json.dumps(_line(reverse_kl="nan")) + "\n", "'reverse_kl' is \"nan\""),
    (json.dumps(_line(reverse_kl=[1])) + "\n", "'reverse_kl' is [1]"),
    (json.dumps(_line(steps=[1])) + "\n", "'steps' is [1]"),
    (json.dumps(_line(dataset="spiral")) + "\n", "dataset 'spiral': this table is for ring8, grid25 and stacked-mnist"),
    (json.dumps(_line(evals=[])) + "\n", "no evaluation"),
    (json.dumps(_line(evals=[{"step": 1, "mode_counts": ["a"]}])) + "\n", "has no list of 'mode_counts'"),
    (json.dumps(_line(evals=[{"step": 1, "mode_counts": [1], "nearest_counts": "abc"}])) + "\n",
     "has 'nearest_counts' \"abc\""),
    ("", "no run in the files"),
])
def test_a_file_it_cannot_read_is_one_line_and_exit_2(text, words, tmp_path, capsys):
    import collapse_table

    path = tmp_path / "r.jsonl"
    path.write_text(text)
    assert collapse_table.main([str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


@pytest.mark.parametrize("args, words", [
    (["none.jsonl"], "no such results file"),
    ([""], "is a folder"),
    ([str(RESULTS), "--cells", "nosuch"], "no run of cell 'nosuch' in the files"),
    ([str(RESULTS), "--steps", "3"], "no run in the files at 3 steps"),
    ([str(RESULTS), str(ROOT / "benchmarks" / "results" / "stacked-mnist-d4.jsonl"), "--steps", "10000"],
     "Stacked MNIST runs and mixture runs in one table"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, words, tmp_path, capsys, monkeypatch):
    import collapse_table

    monkeypatch.chdir(tmp_path)
    assert collapse_table.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_a_failed_run_is_left_out_and_said(tmp_path, capsys):
    import collapse_table

    lines = [x for x in RESULTS.read_text().splitlines() if json.loads(x)["cell"] == "zcr"]
    failed = dict(json.loads(lines[0]), seed=10, error="NonFiniteError: loss is nan", modes_covered=None, evals=[])
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(lines + [json.dumps(failed)]) + "\n")
    assert collapse_table.main([str(path)]) == 0
    out = capsys.readouterr()
    assert "| 10 / 10 |" in out.out and "line 21: a failed run (NonFiniteError: loss is nan); left out" in out.err


def test_runs_of_two_lengths_in_one_row_are_refused(tmp_path, capsys):
    import collapse_table

    lines = [json.loads(x) for x in RESULTS.read_text().splitlines() if json.loads(x)["cell"] == "zcr"]
    lines[3]["steps"] = 500
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert collapse_table.main([str(path)]) == 2
    assert "'zcr' has runs of other lengths or protocols (500 steps, collapse; 10000 steps, collapse)" \
        in capsys.readouterr().err
    assert collapse_table.main([str(path), "--steps", "10000"]) == 0
    assert "| 9 / 10 |" in capsys.readouterr().out


SMNIST = ROOT / "benchmarks" / "results" / "stacked-mnist-d4.jsonl"


def test_stacked_mnist_rows_by_hand_and_one_length_at_a_time(capsys):
    import collapse_table

    runs = [json.loads(x) for x in SMNIST.read_text().splitlines()]
    runs = [r for r in runs if r["steps"] == 2000 and r["cell"] == "baseline"]
    assert collapse_table.main([str(SMNIST), "--steps", "2000"]) == 0
    row = [c.strip() for c in capsys.readouterr().out.splitlines()[2].strip("|").split("|")]
    modes = [r["modes_covered"] for r in runs]
    mean = sum(modes) / 3
    se = math.sqrt(sum((m - mean) ** 2 for m in modes) / 2) / math.sqrt(3)
    kl = sum(r["kl_to_uniform"] for r in runs) / 3
    collapsed = 0
    for r in runs:                  # at most 500 of the 1,000 triples, or a KL above log 2
        counts = r["evals"][-1]["mode_counts"]
        p = [c / sum(counts) for c in counts if c > 0]
        collapsed += sum(1 for c in counts if c) <= 500 or sum(q * math.log(q * 1000) for q in p) > math.log(2)
    def mean_se(values, digits):
        m = sum(values) / len(values)
        e = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) / math.sqrt(len(values))
        return f"{m:.{digits}f} ± {e:.{digits}f}"

    assert row == ["baseline", f"{mean:.1f} ± {se:.1f} ({min(modes)}–{max(modes)})",
                   mean_se([r["kl_to_uniform"] for r in runs], 2), mean_se([r["fid"] for r in runs], 0),
                   mean_se([r["coverage"] for r in runs], 2), str(collapsed),
                   f"{sorted(r['cpu_s'] for r in runs)[1]:.0f}", "3", "—"]
    assert collapsed == 3 and f"{kl:.2f}" == "1.04"       # §9i: every baseline run uneven (KL above log 2)
    # the 10,000-step run of seed 0 is a second run of that seed: one length at a time
    assert collapse_table.main([str(SMNIST)]) == 2
    assert "keep one length with --steps" in capsys.readouterr().err


def test_runs_of_a_bench_with_set_are_their_own_row(tmp_path, capsys):
    import collapse_table

    runs = [json.loads(x) for x in SMNIST.read_text().splitlines()][:3]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in runs) +
                    "".join(json.dumps(dict(r, cell="unrolled", set="scheme=unrolled:k=10")) + "\n" for r in runs))
    assert collapse_table.main([str(path), "--cells", "baseline,unrolled"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == ["baseline", "unrolled [scheme=unrolled:k=10]"]
    assert rows[0].split("|")[2:8] == rows[1].split("|")[2:8]    # the same runs, the same numbers
