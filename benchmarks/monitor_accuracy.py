"""How often the monitor's collapse flag is right, scored on the evaluations of benchmark runs.

    python benchmarks/monitor_accuracy.py benchmarks/results/collapse-10000.jsonl

Each results line (``gantricks bench``) keeps every evaluation of its run. The monitor's evaluation rule
(:meth:`gantricks.monitor.Monitor.judge_eval`, the code the training loop runs) is replayed on them, and each
evaluation is scored against the truth from the mode counts: **collapsed** as :mod:`gantricks.collapse`
defines it (at most half the modes covered by sharp samples, or a reverse KL above log 2). Reported per
dataset: precision and recall of "the mode-collapse flag is up at this evaluation" over evaluations, and
per run the steps from the first collapsed evaluation to the first flagged one. Of the collapsed runs the
collapse flag never caught, the table also counts those whose live monitor (the ``flags`` of the results
line, raised during training) said the run failed another way, D winning or a divergence: G's samples
pushed off the data by a D that wins, with G's gradient vanishing, are "collapsed" by both truths (no mode
covered; every sample nearest the same mode) though their spread is many times the data's.

A second truth, **collapsed by mass** (:func:`gantricks.collapse.collapsed_mass`: every sample's nearest
mode, a histogram at least as uneven as an even spread over half the modes), is scored too on the runs
whose evaluations recorded ``nearest_counts`` (runs from 2026-12-01 on): the sharp-sample truth also calls
a G spread thinly over every mode "collapsed", which this one does not.

The one threshold the replay can set, ``collapse_diversity`` (the ratio of sample diversity to the data's
under which the flag goes up), is chosen on ring8 runs only (``--fit ring8``, the F1 over a grid of values);
grid25 (and Stacked MNIST, where present) is held out and scored with it.

``--by-cell`` adds a table per truth with one row per dataset and cell (the monitor's default threshold):
where the flags that the truth calls false, or the collapses the flag misses, come from.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Iterator

from gantricks import jsonl
from gantricks.collapse import collapsed_counts, collapsed_mass
from gantricks.errors import ConfigError
from gantricks.monitor import Monitor

GRID = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)
OTHER_FAILURES = ("discriminator-wins", "divergence")


class BadResults(Exception):
    """A results file this script cannot score: one line, exit 2 (from :func:`main`)."""


def load(paths: list[Path]) -> list[dict]:
    """The runs of bench results files that have evaluations and no error. A last line cut by a kill is left
    out; any other line that is not a run with evaluations the monitor can replay is :class:`BadResults`."""
    runs = []
    for path in paths:
        if path.is_dir():
            raise BadResults(f"{path} is a folder, not a results file (its results.jsonl?)")
        if not path.exists():
            raise BadResults(f"no such results file: {path}")
        try:
            lines = jsonl.read(path, "not bench results")
        except ConfigError as err:
            raise BadResults(str(err)) from None
        for n, r in lines:
            if r.get("evals") and not r.get("error"):
                why = _not_replayable(r)
                if why:
                    raise BadResults(f"{path}, line {n}: {why}")
                runs.append(r)
    if not runs:
        raise BadResults(f"no run with evaluations in {', '.join(map(str, paths))}")
    return runs


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _not_replayable(r: dict) -> str:
    """Why the monitor cannot be replayed on run ``r``'s evaluations; empty if it can."""
    if not isinstance(r.get("dataset"), str):
        return "no 'dataset'"
    if not isinstance(r["evals"], list) or not all(isinstance(e, dict) for e in r["evals"]):
        return "'evals' is not a list of evaluations"
    for e in r["evals"]:
        if not _number(e.get("step")):
            return f"an evaluation's 'step' is {json.dumps(e.get('step'))}"
        counts = e.get("mode_counts")
        if not isinstance(counts, list) or not all(_number(c) for c in counts):
            return f"the evaluation at step {e['step']} has no list of 'mode_counts'"
        for key in ("modes_covered", "modes", "diversity_ratio", "high_quality_pct"):
            if key in e and e[key] is not None and not _number(e[key]):
                return f"the evaluation at step {e['step']} has {key!r} {json.dumps(e[key])}"
        nearest = e.get("nearest_counts")
        if nearest is not None and not (isinstance(nearest, list) and all(_number(c) for c in nearest)):
            return f"the evaluation at step {e['step']} has 'nearest_counts' {json.dumps(nearest)[:40]}"
    return ""


def replay_evals(evals: list[dict], **thresholds) -> Iterator[tuple[dict, Monitor, list]]:
    """Each evaluation record with the monitor after judging it and the flags that raised."""
    monitor = Monitor(**thresholds)
    for e in evals:
        yield e, monitor, monitor.judge_eval(e["step"], dict(e))


def raised_flags(evals: list[dict], **thresholds) -> list[tuple[int, str]]:
    """(step, name) of each mode-collapse flag the evaluation rule raises on these evaluations."""
    return [(f.step, f.name) for _, _, flags in replay_evals(evals, **thresholds) for f in flags
            if f.name == "mode-collapse"]


TRUTHS = {"sharp": lambda e: collapsed_counts(e["mode_counts"]),
          "mass": lambda e: collapsed_mass(e["nearest_counts"])}


def has_truth(run: dict, truth: str) -> bool:
    return truth == "sharp" or all(e.get("nearest_counts") is not None for e in run["evals"])


def replay(run: dict, truth: str = "sharp", **thresholds) -> list[tuple[int, bool, bool]]:
    """(step, flag up, collapsed by ``truth``) at each evaluation of ``run``."""
    return [(e["step"], "mode-collapse" in monitor.active, TRUTHS[truth](e))
            for e, monitor, _ in replay_evals(run["evals"], **thresholds)]


def score(runs: list[dict], truth: str = "sharp", **thresholds) -> dict:
    tp = fp = fn = tn = 0
    delays, missed, other = [], 0, 0
    for run in runs:
        seq = replay(run, truth, **thresholds)
        for _, flagged, collapsed in seq:
            tp += flagged and collapsed
            fp += flagged and not collapsed
            fn += collapsed and not flagged
            tn += not (flagged or collapsed)
        onset = next((s for s, _, collapsed in seq if collapsed), None)
        if onset is not None:
            flag = next((s for s, flagged, _ in seq if flagged and s >= onset), None)
            if flag is None:
                missed += 1
                other += any(f["flag"] in OTHER_FAILURES for f in run.get("flags", []))
            else:
                delays.append(flag - onset)
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"runs": len(runs), "evaluations": tp + fp + fn + tn, "collapsed": tp + fn, "tp": tp, "fp": fp,
            "fn": fn, "tn": tn, "precision": precision, "recall": recall, "f1": f1,
            "median_delay": statistics.median(delays) if delays else None,
            "runs_collapsed_never_flagged": missed, "of_them_other_failure_flagged": other}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("--fit", default="ring8", help="the dataset the threshold is chosen on (default ring8)")
    p.add_argument("--truth", choices=["sharp", "mass", "both"], default="both",
                   help="the truth scored against (default both; mass only on runs that recorded it)")
    p.add_argument("--by-cell", action="store_true",
                   help="also one row per dataset and cell, at the monitor's default threshold")
    args = p.parse_args(argv)
    try:
        runs = load(args.results)     # --fit naming no dataset here scores them all with the default threshold
    except BadResults as err:
        print(f"monitor_accuracy: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    for truth in (["sharp", "mass"] if args.truth == "both" else [args.truth]):
        table(runs, truth, args.fit)
        if args.by_cell:
            cell_table(runs, truth)


def table(all_runs: list[dict], truth: str, fit_on: str) -> None:
    runs = [r for r in all_runs if has_truth(r, truth)]
    print(f"\ntruth: collapsed by {'sharp samples' if truth == 'sharp' else 'mass'} ({len(runs)} runs)")
    if not runs:
        return
    datasets = sorted({r["dataset"] for r in runs})
    fit = [r for r in runs if r["dataset"] == fit_on]
    default = Monitor().collapse_diversity
    best = max(GRID, key=lambda t: (score(fit, truth, collapse_diversity=t)["f1"], t == default)) if fit else default
    print(f"collapse_diversity chosen on {fit_on} ({len(fit)} runs): {best} (the monitor's default: {default})")
    print("| dataset | threshold | runs | evaluations | collapsed | precision | recall | median steps onset → flag "
          "| collapsed runs never flagged (of them, D wins or divergence flagged) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ds in datasets:
        part = [r for r in runs if r["dataset"] == ds]
        for name, t in (("default", default), ("fitted", best)):
            s = score(part, truth, collapse_diversity=t)
            held = "" if ds == fit_on else " (held out)"
            print(f"| {ds}{held} | {name} {t} | {s['runs']} | {s['evaluations']} | {s['collapsed']} | "
                  f"{s['precision']:.2f} | {s['recall']:.2f} | {s['median_delay']} | "
                  f"{s['runs_collapsed_never_flagged']} ({s['of_them_other_failure_flagged']}) |")


def _share(x: float) -> str:
    """A precision or recall to two places; "-" where it is undefined (no flag, or nothing collapsed)."""
    return "-" if math.isnan(x) else f"{x:.2f}"


def cell_table(all_runs: list[dict], truth: str) -> None:
    """One row per dataset and cell (runs without a ``cell``, from other tools, as "-"), default threshold."""
    runs = [r for r in all_runs if has_truth(r, truth)]
    if not runs:
        return
    print(f"\nby cell, truth: collapsed by {'sharp samples' if truth == 'sharp' else 'mass'} "
          f"(the default threshold {Monitor().collapse_diversity})")
    print("| dataset | cell | runs | evaluations | collapsed | flagged | false flags | missed | precision | recall "
          "| collapsed runs never flagged |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], str(r.get("cell", "-"))), []).append(r)
    for (ds, cell), part in sorted(groups.items()):
        s = score(part, truth)
        print(f"| {ds} | {cell} | {s['runs']} | {s['evaluations']} | {s['collapsed']} | {s['tp'] + s['fp']} | "
              f"{s['fp']} | {s['fn']} | {_share(s['precision'])} | {_share(s['recall'])} | "
              f"{s['runs_collapsed_never_flagged']} |")


if __name__ == "__main__":
    main()
