"""The rows of BENCHMARKS.md §9's tables, from the raw lines of collapse-protocol benches.

    python benchmarks/collapse_table.py benchmarks/results/collapse-10000.jsonl --cells baseline,zcr
    python benchmarks/collapse_table.py benchmarks/results/collapse-mbd-10000.jsonl --per-seed

One row per cell, as §9's tables: per mixture the modes covered at the end, mean ± standard error over seeds
(range); the mean high-quality %; the reverse KL, mean ± s.e. (``inf`` when a run has no sharp sample); the runs
collapsed at the last evaluation by sharp samples / by mass (:mod:`gantricks.collapse`; ``—`` where the lines
recorded no ``nearest_counts``); then the median CPU seconds over the cell's runs and, where the files hold the
baseline too, the verdict of :func:`gantricks.collapse.verdict` per mixture. ``--per-seed`` prints one row per
run instead: its modes and diversity ratio at each evaluation. Runs made with a bench's ``--set`` are a row of
their own, named ``CELL [SETTINGS]``. Stacked MNIST lines give one table of modes, KL, FID and coverage.
A line that repeats the run of an earlier line is left out, and said so on stderr; a row with two runs of one
seed (other steps or protocol) is an error unless ``--steps`` keeps one.
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
_NEEDED = {"cell": str, "dataset": str, "seed": int, "modes_covered": int, "cpu_s": (int, float), "evals": list}
IMAGES = "stacked-mnist"


def _check(line: dict, where: str) -> dict:
    for key, kind in _NEEDED.items():
        if not isinstance(line.get(key), kind) or isinstance(line.get(key), bool):
            raise ConfigError(f"{where}: {key!r} is {'missing' if key not in line else repr(line[key])[:40]}; "
                              "not a line of a collapse-protocol bench")
    if not any(isinstance(e, dict) and isinstance(e.get("mode_counts"), list) for e in line["evals"]):
        raise ConfigError(f"{where}: no evaluation with 'mode_counts'; not a line of a collapse-protocol bench")
    return line


def load(paths: Iterable[Path]) -> list[dict]:
    """The lines of ``paths`` in order, each run (the bench's key: cell, dataset, seed, steps, protocol and
    ``--set``) once, the first."""
    seen, out = set(), []
    for path in paths:
        if path.is_dir():
            raise ConfigError(f"{path} is a folder, not a results file")
        if not path.is_file():
            raise ConfigError(f"no such results file: {path}")
        for number, line in jsonl.read(path):
            _check(line, f"{path}, line {number}")
            key = (line["cell"], line["dataset"], line["seed"], line.get("steps"), line.get("protocol"),
                   line.get("set", ""))
            if key in seen:
                print(f"{path}, line {number}: {key} already read; left out", file=sys.stderr)
                continue
            seen.add(key)
            out.append(dict(line, name=line["cell"] + (f" [{line['set']}]" if line.get("set") else "")))
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
    if any(not isinstance(r.get("high_quality_pct"), (int, float)) for r in lines):
        raise ConfigError(f"{lines[0]['cell']}/{lines[0]['dataset']}: a line without 'high_quality_pct'")
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
    baseline = {d: [r for r in lines if r["name"] == "baseline" and r["dataset"] == d] for d in DATASETS}
    base_share = {d: (_collapsed(b)[0] / len(b) if b else None) for d, b in baseline.items()}
    judged = any(v is not None for v in base_share.values())
    header = ["cell"] + [f"{d} {c}" for d in DATASETS for c in ("modes", "HQ %", "rev-KL", "collapsed")] + \
             ["CPU s", "seeds"] + ([f"verdict {d}" for d in DATASETS] if judged else [])
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells:
        mine = [r for r in lines if r["name"] == cell]
        row, seeds, verdicts = [cell], [], []
        for d in DATASETS:
            runs = [r for r in mine if r["dataset"] == d]
            row += dataset_cells(runs) if runs else ["—"] * 4
            seeds.append(str(len(runs)))
            if runs and base_share[d] is not None:
                verdicts.append(verdict(_collapsed(runs)[0] / len(runs), base_share[d]))
            elif judged:
                verdicts.append("—")
        row += [f"{statistics.median(r['cpu_s'] for r in mine):.0f}", " / ".join(seeds)] + verdicts
        rows.append("| " + " | ".join(row) + " |")
    return rows


def image_rows(lines: Sequence[dict], cells: Sequence[str]) -> list[str]:
    """Stacked MNIST: modes (mean ± s.e. (range)), KL to uniform, FID and coverage (mean ± s.e.), the runs collapsed
    at the last evaluation (the same definition over 1,000 modes: at most 500 covered, or a KL above log 2)."""
    baseline = [r for r in lines if r["name"] == "baseline"]
    base_share = _collapsed(baseline)[0] / len(baseline) if baseline else None
    header = ["cell", "modes", "KL to uniform", "FID (digit features)", "coverage", "collapsed", "CPU s", "seeds"]
    header += ["verdict"] if base_share is not None else []
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells:
        runs = [r for r in lines if r["name"] == cell]
        modes = [r["modes_covered"] for r in runs]
        row = [cell, "{:.1f} ± {:.1f}".format(*_mean_se(modes)) + f" ({min(modes)}–{max(modes)})"]
        for key, digits in (("kl_to_uniform", 2), ("fid", 0), ("coverage", 2)):
            values = [r.get(key) for r in runs]
            if any(not isinstance(v, (int, float)) for v in values):
                raise ConfigError(f"{cell}/{runs[0]['dataset']}: a line without {key!r}")
            mean, se = _mean_se(values)
            row.append(f"{mean:.{digits}f} ± {se:.{digits}f}")
        sharp = _collapsed(runs)[0]
        row += [str(sharp), f"{statistics.median(r['cpu_s'] for r in runs):.0f}", str(len(runs))]
        row += [verdict(sharp / len(runs), base_share)] if base_share is not None else []
        rows.append("| " + " | ".join(row) + " |")
    return rows


def _hq(line: dict) -> str:
    hq = line.get("high_quality_pct")
    return f"{hq:.2f}" if isinstance(hq, (int, float)) else "—"


def seed_rows(lines: Sequence[dict]) -> list[str]:
    rows = ["| cell | dataset | seed | modes at the end | modes at each evaluation | diversity ratio at each "
            "evaluation | HQ % | collapsed (sharp / mass) | CPU s |", "|" + "---|" * 9]
    order = {d: i for i, d in enumerate(DATASETS)}
    for r in sorted(lines, key=lambda r: (r["name"], order.get(r["dataset"], len(order)), r["dataset"], r["seed"])):
        evals = [e for e in r["evals"] if isinstance(e, dict) and isinstance(e.get("mode_counts"), list)]
        sharp, mass = _collapsed([r])
        ratio = " ".join(f"{e['diversity_ratio']:.2f}" if e.get("diversity_ratio") is not None else "—"
                         for e in evals)
        rows.append(f"| {r['name']} | {r['dataset']} | {r['seed']} | {r['modes_covered']} | "
                    f"{' '.join(str(e['modes_covered']) for e in evals)} | {ratio} | {_hq(r)} | "
                    f"{'yes' if sharp else 'no'} / {'—' if mass is None else ('yes' if mass else 'no')} | "
                    f"{r['cpu_s']:.0f} |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="results.jsonl files of collapse-protocol benches")
    parser.add_argument("--cells", help="comma-separated cells, in the table's order (default: every cell, "
                                        "in the files' order)")
    parser.add_argument("--steps", type=int, help="only the runs of this length (where the files hold several)")
    parser.add_argument("--per-seed", action="store_true", help="one row per run instead of per cell")
    args = parser.parse_args(argv)
    try:
        lines = load(args.files)
        if args.steps is not None:
            lines = [r for r in lines if r.get("steps") == args.steps]
        for name in {r["name"] for r in lines}:
            kinds = {(r["dataset"], r["seed"]) for r in lines if r["name"] == name}
            if len(kinds) < sum(r["name"] == name for r in lines):
                raise ConfigError(f"{name!r} has runs of one seed with other steps or protocol; keep one "
                                  "(--steps N) or give their files apart")
        names = list(dict.fromkeys(r["name"] for r in lines))
        if args.cells:       # a bare cell names its runs with and without --set
            asked = [c.strip() for c in args.cells.split(",") if c.strip()]
            wanted = []
            for cell in asked:
                mine = [n for n in names if n == cell or n.split(" [")[0] == cell]
                if not mine:
                    raise ConfigError(f"no line of cell {cell!r} in the files")
                wanted += [n for n in mine if n not in wanted]
        else:
            wanted = names
        lines_for = [r for r in lines if r["name"] in wanted]
        if args.per_seed:
            print("\n".join(seed_rows(lines_for)))
        else:
            images = [r for r in lines if r["dataset"] == IMAGES]
            if images and len(images) < len(lines):
                raise ConfigError("Stacked MNIST lines and mixture lines in one table; give them apart")
            print("\n".join((image_rows if images else summary_rows)(lines, wanted)))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
