"""The rows of BENCHMARKS.md §9's tables, from the raw lines of collapse-protocol benches.

    python benchmarks/collapse_table.py benchmarks/results/collapse-10000.jsonl --cells baseline,zcr
    python benchmarks/collapse_table.py benchmarks/results/collapse-mbd-10000.jsonl --per-seed

One row per cell, as §9's tables: per mixture the modes covered at the end, mean ± standard error over seeds
(range); the mean high-quality %; the reverse KL, mean ± s.e. (``inf`` when a run has no sharp sample); the runs
collapsed at the last evaluation by sharp samples / by mass (:mod:`gantricks.collapse`; ``—`` where the lines
recorded no ``nearest_counts``); then the median CPU seconds over the cell's runs and, where the files hold the
baseline too, the verdict of :func:`gantricks.collapse.verdict` per mixture. ``--per-seed`` prints one row per
run instead: its modes and diversity ratio at each evaluation. A line that repeats a (cell, dataset, seed) of
an earlier line is left out, and said so on stderr.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Iterable, Sequence

from gantricks import jsonl
from gantricks.collapse import collapsed_counts, collapsed_mass, verdict
from gantricks.errors import ConfigError

DATASETS = ("ring8", "grid25")
_NEEDED = {"cell": str, "dataset": str, "seed": int, "modes_covered": int, "high_quality_pct": (int, float),
           "cpu_s": (int, float), "evals": list}


def _check(line: dict, where: str) -> dict:
    for key, kind in _NEEDED.items():
        if not isinstance(line.get(key), kind) or isinstance(line.get(key), bool):
            raise ConfigError(f"{where}: {key!r} is {'missing' if key not in line else repr(line[key])[:40]}; "
                              "not a line of a collapse-protocol bench")
    if not any(isinstance(e, dict) and isinstance(e.get("mode_counts"), list) for e in line["evals"]):
        raise ConfigError(f"{where}: no evaluation with 'mode_counts'; not a line of a collapse-protocol bench")
    return line


def load(paths: Iterable[Path]) -> list[dict]:
    """The lines of ``paths`` in order, each (cell, dataset, seed) once (the first)."""
    seen, out = set(), []
    for path in paths:
        if path.is_dir():
            raise ConfigError(f"{path} is a folder, not a results file")
        if not path.is_file():
            raise ConfigError(f"no such results file: {path}")
        for number, line in jsonl.read(path):
            _check(line, f"{path}, line {number}")
            key = (line["cell"], line["dataset"], line["seed"])
            if key in seen:
                print(f"{path}, line {number}: {key} already read; left out", file=sys.stderr)
                continue
            seen.add(key)
            out.append(line)
    return out


def _last(line: dict) -> dict:
    return [e for e in line["evals"] if isinstance(e, dict) and isinstance(e.get("mode_counts"), list)][-1]


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0)


def _collapsed(lines: Sequence[dict]) -> tuple[int, int | None]:
    sharp = sum(collapsed_counts(_last(r)["mode_counts"]) for r in lines)
    nearest = [_last(r).get("nearest_counts") for r in lines]
    mass = None if any(n is None for n in nearest) else sum(collapsed_mass(n) for n in nearest)
    return sharp, mass


def dataset_cells(lines: Sequence[dict]) -> list[str]:
    """Modes (mean ± s.e. (range)), HQ %, reverse KL, collapsed sharp / mass: four table cells."""
    modes = [r["modes_covered"] for r in lines]
    mean, se = _mean_se(modes)
    hq = statistics.fmean(r["high_quality_pct"] for r in lines)
    kls = [jsonl.number(r.get("reverse_kl")) for r in lines]
    if None in kls:
        raise ConfigError(f"{lines[0]['cell']}/{lines[0]['dataset']}: a line without 'reverse_kl'")
    if any(math.isinf(k) for k in kls):
        kl = "inf"
    else:
        kl_mean, kl_se = _mean_se(kls)
        kl = f"{kl_mean:.2f} ± {kl_se:.2f}"
    sharp, mass = _collapsed(lines)
    return [f"{mean:.1f} ± {se:.1f} ({min(modes)}–{max(modes)})", f"{hq:.1f}", kl,
            f"{sharp} / {'—' if mass is None else mass}"]


def summary_rows(lines: Sequence[dict], cells: Sequence[str]) -> list[str]:
    baseline = {d: [r for r in lines if r["cell"] == "baseline" and r["dataset"] == d] for d in DATASETS}
    base_share = {d: (_collapsed(b)[0] / len(b) if b else None) for d, b in baseline.items()}
    header = ["cell"] + [f"{d} {c}" for d in DATASETS for c in ("modes", "HQ %", "rev-KL", "collapsed")] + \
             ["CPU s", "seeds"] + ([f"verdict {d}" for d in DATASETS] if any(base_share.values()) else [])
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells:
        mine = [r for r in lines if r["cell"] == cell]
        if not mine:
            raise ConfigError(f"no line of cell {cell!r} in the files")
        row, seeds, verdicts = [cell], [], []
        for d in DATASETS:
            runs = [r for r in mine if r["dataset"] == d]
            row += dataset_cells(runs) if runs else ["—"] * 4
            seeds.append(str(len(runs)))
            if runs and base_share[d] is not None:
                verdicts.append(verdict(_collapsed(runs)[0] / len(runs), base_share[d]))
            elif any(base_share.values()):
                verdicts.append("—")
        row += [f"{statistics.median(r['cpu_s'] for r in mine):.0f}", " / ".join(seeds)] + verdicts
        rows.append("| " + " | ".join(row) + " |")
    return rows


def seed_rows(lines: Sequence[dict]) -> list[str]:
    rows = ["| cell | dataset | seed | modes at the end | modes at each evaluation | diversity ratio at each "
            "evaluation | HQ % | collapsed (sharp / mass) | CPU s |", "|" + "---|" * 9]
    order = {d: i for i, d in enumerate(DATASETS)}
    for r in sorted(lines, key=lambda r: (r["cell"], order.get(r["dataset"], len(order)), r["dataset"], r["seed"])):
        evals = [e for e in r["evals"] if isinstance(e, dict) and isinstance(e.get("mode_counts"), list)]
        sharp, mass = _collapsed([r])
        ratio = " ".join(f"{e['diversity_ratio']:.2f}" if e.get("diversity_ratio") is not None else "—"
                         for e in evals)
        rows.append(f"| {r['cell']} | {r['dataset']} | {r['seed']} | {r['modes_covered']} | "
                    f"{' '.join(str(e['modes_covered']) for e in evals)} | {ratio} | {r['high_quality_pct']:.2f} | "
                    f"{'yes' if sharp else 'no'} / {'—' if mass is None else ('yes' if mass else 'no')} | "
                    f"{r['cpu_s']:.0f} |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="results.jsonl files of collapse-protocol benches")
    parser.add_argument("--cells", help="comma-separated cells, in the table's order (default: every cell, "
                                        "in the files' order)")
    parser.add_argument("--per-seed", action="store_true", help="one row per run instead of per cell")
    args = parser.parse_args(argv)
    try:
        lines = load(args.files)
        if args.cells:
            wanted = [c.strip() for c in args.cells.split(",") if c.strip()]
            lines_for = [r for r in lines if r["cell"] in wanted]
        else:
            wanted, lines_for = list(dict.fromkeys(r["cell"] for r in lines)), lines
        if args.per_seed:
            print("\n".join(seed_rows(lines_for)))
        else:
            print("\n".join(summary_rows(lines, wanted)))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
