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


def test_the_baseline_without_nearest_counts_has_no_mass_column(capsys):
    import collapse_table

    assert collapse_table.main([str(RESULTS), "--cells", "baseline"]) == 0
    row = capsys.readouterr().out.splitlines()[2]
    assert "| 10 / — |" in row


def test_per_seed_rows_give_each_evaluation(capsys):
    import collapse_table

    assert collapse_table.main([str(RESULTS), "--cells", "zcr", "--per-seed"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert len(rows) == 20 and rows[0].startswith("| zcr | ring8 | 0 |") and rows[10].startswith("| zcr | grid25 | 0 |")
    first = _lines("zcr", "ring8")[0]
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[4] == " ".join(str(e["modes_covered"]) for e in first["evals"])
    assert cells[5] == " ".join(f"{e['diversity_ratio']:.2f}" for e in first["evals"])


def test_a_run_read_twice_counts_once(tmp_path, capsys):
    import collapse_table

    lines = RESULTS.read_text().splitlines()
    zcr = [x for x in lines if json.loads(x)["cell"] == "zcr"]
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join(zcr + zcr[:1]) + "\n")
    assert collapse_table.main([str(twice)]) == 0
    out = capsys.readouterr()
    assert "10 / 10" in out.out and "line 21" in out.err and "already read" in out.err


@pytest.mark.parametrize("text, words", [
    ("{garbage\n", "line 1: not JSON"),
    (json.dumps({"cell": "a", "dataset": "ring8", "seed": 0}) + "\n", "'modes_covered' is missing"),
    (json.dumps({"cell": "a", "dataset": "ring8", "seed": 0, "modes_covered": 1, "high_quality_pct": 1.0,
                 "cpu_s": 1.0, "evals": []}) + "\n", "no evaluation with 'mode_counts'"),
])
def test_a_file_it_cannot_read_is_one_line_and_exit_2(text, words, tmp_path, capsys):
    import collapse_table

    path = tmp_path / "r.jsonl"
    path.write_text(text)
    for args, said in (([str(path)], words), ([str(tmp_path / "none.jsonl")], "no such results file"),
                       ([str(tmp_path)], "is a folder"), ([str(RESULTS), "--cells", "nosuch"], "no line of cell")):
        assert collapse_table.main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0], err


SMNIST = ROOT / "benchmarks" / "results" / "stacked-mnist-d4.jsonl"


def test_stacked_mnist_rows_by_hand_and_one_length_at_a_time(capsys):
    import collapse_table

    runs = [json.loads(x) for x in SMNIST.read_text().splitlines()]
    runs = [r for r in runs if r["steps"] == 2000]
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
    assert row[:3] == ["baseline", f"{mean:.1f} ± {se:.1f} ({min(modes)}–{max(modes)})", row[2]]
    assert row[2].startswith(f"{kl:.2f} ± ") and row[5] == str(collapsed) and row[7] == "3"
    # the 10,000-step run of seed 0 is a second run of that seed: one length at a time
    assert collapse_table.main([str(SMNIST)]) == 2
    assert "keep one (--steps N)" in capsys.readouterr().err


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
