"""The rows of BENCHMARKS.md §9's tables, from the raw lines of collapse-protocol (and Stacked MNIST) benches.

    python benchmarks/collapse_table.py benchmarks/results/collapse-10000.jsonl --cells baseline,zcr
    python benchmarks/collapse_table.py benchmarks/results/collapse-mbd-10000.jsonl --per-seed
    python benchmarks/collapse_table.py benchmarks/results/stacked-mnist-d4.jsonl --steps 2000

One row per cell, as §9's tables: per mixture the modes covered at the end, mean ± standard error over seeds
(range); the mean high-quality %; the reverse KL, mean ± s.e. (``inf`` when a run has no sharp sample); the runs
collapsed at the last evaluation by sharp samples / by mass (:mod:`gantricks.collapse`; ``—`` where the lines
recorded no ``nearest_counts``); then the median CPU seconds over the cell's runs, the seeds, and, where the
files hold the baseline too, the verdict of :func:`gantricks.collapse.verdict` per mixture. Stacked MNIST lines
give one table of modes, KL to uniform, FID and coverage, with the same definition of collapsed over 1,000
modes. ``--per-seed`` prints one row per run instead: its modes and diversity ratio at each evaluation.

Runs made with a bench's ``--set`` are a row of their own, named ``CELL [SETTINGS]``. A row holds runs of one
length and protocol (``--steps`` keeps one length where the files hold several). A line that repeats an earlier
run (the bench's key) is left out, and so is a failed run; each is said on stderr.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Iterable, Sequence

from monitor_accuracy import _not_replayable, _number

from gantricks import jsonl
from gantricks.bench import _key, _not_a_result, mean_se
from gantricks.collapse import collapsed_counts, collapsed_mass, verdict
from gantricks.errors import ConfigError

MIXTURES = ("ring8", "grid25")
STACKED = "stacked-mnist"
# the end-of-run numbers each kind of line must hold (finite; the reverse KL may be inf: no sharp sample)
_NUMBERS = {"mixtures": ("modes_covered", "high_quality_pct", "cpu_s"),
            "images": ("modes_covered", "kl_to_uniform", "fid", "coverage", "cpu_s")}


def _finite(value) -> bool:
    return _number(jsonl.number(value))


def _why_not(line: dict) -> str:
    """Why ``line`` cannot be a row's run; empty if it can."""
    why = _not_a_result(line) or ("" if line.get("error") else _not_replayable(line))
    if why or line.get("error"):
        return why
    if line["dataset"] not in (*MIXTURES, STACKED):
        return f"dataset {line['dataset']!r}: this table is for ring8, grid25 and stacked-mnist"
    for key in _NUMBERS["images" if line["dataset"] == STACKED else "mixtures"]:
        if not _finite(line.get(key)):
            return f"{key!r} is {jsonl.word(line.get(key))!r}, not a finite number"
    if line["dataset"] != STACKED:
        kl = jsonl.number(line.get("reverse_kl"))
        if not isinstance(kl, (int, float)) or isinstance(kl, bool) or math.isnan(kl):
            return f"'reverse_kl' is {jsonl.word(kl)!r}, not a number"
    if not line["evals"]:
        return "no evaluation"
    return ""


def load(paths: Iterable[Path]) -> list[dict]:
    """The runs of ``paths`` in order, each once (the first line of its key), failed runs left out; each with a
    ``name``: its cell, and the bench's ``--set`` if it had one."""
    seen, out = set(), []
    for path in paths:
        if path.is_dir():
            raise ConfigError(f"{path} is a folder, not a results file (its results.jsonl?)")
        if not path.exists():
            raise ConfigError(f"no such results file: {path}")
        for number, line in jsonl.read(path, "not bench results"):
            why = _why_not(line)
            if why:
                raise ConfigError(f"{path}, line {number}: {why}")
            if line.get("error"):
                print(f"{path}, line {number}: a failed run ({line['error'][:60]}); left out", file=sys.stderr)
                continue
            if _key(line) in seen:
                print(f"{path}, line {number}: {_key(line)[:3]} already read; left out", file=sys.stderr)
                continue
            seen.add(_key(line))
            out.append(dict(line, name=line["cell"] + (f" [{line['set']}]" if line.get("set") else "")))
    return out


def _last(line: dict) -> dict:
    return line["evals"][-1]


def _collapsed(runs: Sequence[dict]) -> tuple[int, int | None]:
    """Runs collapsed at their last evaluation by sharp samples, and by mass (None: not recorded for all)."""
    sharp = sum(collapsed_counts(_last(r)["mode_counts"]) for r in runs)
    nearest = [_last(r).get("nearest_counts") for r in runs]
    mass = None if any(n is None for n in nearest) else sum(collapsed_mass(n) for n in nearest)
    return sharp, mass


def _stat(values: Sequence[float], digits: int) -> str:
    mean, se = mean_se(values)
    return f"{mean:.{digits}f}" + ("" if se is None else f" ± {se:.{digits}f}")


def _modes(runs: Sequence[dict]) -> str:
    modes = [r["modes_covered"] for r in runs]
    return f"{_stat(modes, 1)} ({min(modes)}–{max(modes)})"


def _verdict(name: str, collapsed: int, runs: int, base_share: float | None) -> str:
    if name == "baseline" or not runs or base_share is None:
        return "—"
    return verdict(collapsed / runs, base_share)


def mixture_cells(runs: Sequence[dict], sharp: int, mass: int | None) -> list[str]:
    """Modes (mean ± s.e. (range)), HQ %, reverse KL, collapsed sharp / mass (:func:`_collapsed`): four cells."""
    kls = [jsonl.number(r["reverse_kl"]) for r in runs]
    return [_modes(runs), f"{statistics.fmean(r['high_quality_pct'] for r in runs):.1f}",
            "inf" if any(math.isinf(k) for k in kls) else _stat(kls, 2), f"{sharp} / {'—' if mass is None else mass}"]


def summary_rows(runs: Sequence[dict], names: Sequence[str]) -> list[str]:
    """The mixtures' table: a row per name, ring8's and grid25's columns side by side."""
    base = {d: [r for r in runs if r["name"] == "baseline" and r["dataset"] == d] for d in MIXTURES}
    base_share = {d: (_collapsed(b)[0] / len(b) if b else None) for d, b in base.items()}
    judged = any(v is not None for v in base_share.values())
    header = ["cell"] + [f"{d} {c}" for d in MIXTURES for c in ("modes", "HQ %", "rev-KL", "collapsed")] + \
             ["CPU s", "seeds"] + ([f"verdict {d}" for d in MIXTURES] if judged else [])
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        mine = [r for r in runs if r["name"] == name]
        per = {d: [r for r in mine if r["dataset"] == d] for d in MIXTURES}
        collapsed = {d: _collapsed(per[d]) for d in MIXTURES}
        row = [name] + [c for d in MIXTURES for c in (mixture_cells(per[d], *collapsed[d]) if per[d] else ["—"] * 4)]
        row += [f"{statistics.median(r['cpu_s'] for r in mine):.0f}", " / ".join(str(len(per[d])) for d in MIXTURES)]
        row += [_verdict(name, collapsed[d][0], len(per[d]), base_share[d]) for d in MIXTURES] if judged else []
        rows.append("| " + " | ".join(row) + " |")
    return rows


def image_rows(runs: Sequence[dict], names: Sequence[str]) -> list[str]:
    """Stacked MNIST: modes (mean ± s.e. (range)), KL to uniform, FID and coverage (mean ± s.e.), the runs collapsed
    at the last evaluation (the same definition over 1,000 modes: at most 500 covered, or a KL above log 2)."""
    base = [r for r in runs if r["name"] == "baseline"]
    base_share = _collapsed(base)[0] / len(base) if base else None
    header = ["cell", "modes", "KL to uniform", "FID (digit features)", "coverage", "collapsed", "CPU s", "seeds"]
    header += ["verdict"] if base_share is not None else []
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        mine = [r for r in runs if r["name"] == name]
        row = [name, _modes(mine)] + [_stat([r[key] for r in mine], digits)
                                      for key, digits in (("kl_to_uniform", 2), ("fid", 0), ("coverage", 2))]
        collapsed = _collapsed(mine)[0]
        row += [str(collapsed), f"{statistics.median(r['cpu_s'] for r in mine):.0f}", str(len(mine))]
        row += [_verdict(name, collapsed, len(mine), base_share)] if base_share is not None else []
        rows.append("| " + " | ".join(row) + " |")
    return rows


def seed_rows(runs: Sequence[dict]) -> list[str]:
    """A row per run: modes at the end and at each evaluation, the diversity ratio at each, collapsed or not."""
    rows = ["| cell | dataset | seed | modes at the end | modes at each evaluation | diversity ratio at each "
            "evaluation | HQ % | collapsed (sharp / mass) | CPU s |", "|" + "---|" * 9]
    order = {d: i for i, d in enumerate((*MIXTURES, STACKED))}
    for r in sorted(runs, key=lambda r: (r["name"], order[r["dataset"]], r["seed"])):
        modes = " ".join(str(sum(1 for c in e["mode_counts"] if c > 0)) for e in r["evals"])
        ratio = " ".join(f"{e['diversity_ratio']:.2f}" if e.get("diversity_ratio") is not None else "—"
                         for e in r["evals"])
        sharp, mass = _collapsed([r])
        hq = jsonl.number(r.get("high_quality_pct"))
        rows.append(f"| {r['name']} | {r['dataset']} | {r['seed']} | {r['modes_covered']} | {modes} | {ratio} | "
                    f"{'—' if hq is None else f'{hq:.2f}'} | {'yes' if sharp else 'no'} / "
                    f"{'—' if mass is None else ('yes' if mass else 'no')} | {r['cpu_s']:.0f} |")
    return rows


def choose(runs: Sequence[dict], cells: str | None, steps: int | None) -> tuple[list[dict], list[str]]:
    """The runs and row names asked for; each row of one length and protocol, and of one kind of data."""
    if steps is not None:
        runs = [r for r in runs if r["steps"] == steps]
    names = list(dict.fromkeys(r["name"] for r in runs))
    if cells:       # a bare cell names its runs with and without --set
        wanted = []
        for cell in (c.strip() for c in cells.split(",") if c.strip()):
            mine = [n for n in names if n == cell or n.split(" [")[0] == cell]
            if not mine:
                raise ConfigError(f"no run of cell {cell!r} in the files" + (f" at {steps} steps" if steps else ""))
            wanted += [n for n in mine if n not in wanted]
        names = wanted
    runs = [r for r in runs if r["name"] in names]
    if not runs:
        raise ConfigError("no run in the files" + (f" at {steps} steps" if steps is not None else ""))
    if len({r["dataset"] == STACKED for r in runs}) > 1:
        raise ConfigError("Stacked MNIST runs and mixture runs in one table; choose one with --cells or their files")
    for name in names:
        lengths = sorted({(r["steps"], r.get("protocol", "pacgan")) for r in runs if r["name"] == name})
        if len(lengths) > 1:
            kinds = "; ".join(f"{s} steps, {p}" for s, p in lengths)
            raise ConfigError(f"{name!r} has runs of other lengths or protocols ({kinds}); "
                              "keep one length with --steps, or give their files apart")
    return runs, names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="results.jsonl files of benches")
    parser.add_argument("--cells", help="comma-separated cells, in the table's order (default: every cell, "
                                        "in the files' order)")
    parser.add_argument("--steps", type=int, help="only the runs of this length (where the files hold several)")
    parser.add_argument("--per-seed", action="store_true", help="one row per run instead of per cell")
    args = parser.parse_args(argv)
    try:
        runs, names = choose(load(args.files), args.cells, args.steps)
        if args.per_seed:
            rows = seed_rows(runs)
        else:
            rows = (image_rows if runs[0]["dataset"] == STACKED else summary_rows)(runs, names)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
