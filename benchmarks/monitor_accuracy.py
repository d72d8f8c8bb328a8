"""How often the monitor's collapse flag is right, scored on the evaluations of benchmark runs.

    python benchmarks/monitor_accuracy.py benchmarks/results/collapse-10000.jsonl

Each results line (``gantricks bench``) keeps every evaluation of its run. The monitor's evaluation rule
(:meth:`gantricks.monitor.Monitor.judge_eval`, the code the training loop runs) is replayed on them, and each
evaluation is scored against the truth from the mode counts: **collapsed** as :mod:`gantricks.collapse`
defines it (at most half the modes covered by sharp samples, or a reverse KL above log 2). Reported per
dataset: precision and recall of "the mode-collapse flag is up at this evaluation" over evaluations, and
per run the steps from the first collapsed evaluation to the first flagged one.

The one threshold the replay can set, ``collapse_diversity`` (the ratio of sample diversity to the data's
under which the flag goes up), is chosen on ring8 runs only (``--fit ring8``, the F1 over a grid of values);
grid25 (and Stacked MNIST, where present) is held out and scored with it.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Iterator

from gantricks.collapse import collapsed_counts
from gantricks.monitor import Monitor

GRID = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)


def load(paths: list[Path]) -> list[dict]:
    runs = []
    for path in paths:
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if r.get("evals") and not r.get("error"):
                runs.append(r)
    return runs


def replay_evals(evals: list[dict], **thresholds) -> Iterator[tuple[dict, Monitor, list]]:
    """Each evaluation record with the monitor after judging it and the flags that raised."""
    monitor = Monitor(**thresholds)
    for e in evals:
        yield e, monitor, monitor.judge_eval(e["step"], dict(e))


def raised_flags(evals: list[dict], **thresholds) -> list[tuple[int, str]]:
    """(step, name) of each mode-collapse flag the evaluation rule raises on these evaluations."""
    return [(f.step, f.name) for _, _, flags in replay_evals(evals, **thresholds) for f in flags
            if f.name == "mode-collapse"]


def replay(run: dict, **thresholds) -> list[tuple[int, bool, bool]]:
    """(step, flag up, collapsed) at each evaluation of ``run``."""
    return [(e["step"], "mode-collapse" in monitor.active, collapsed_counts(e["mode_counts"]))
            for e, monitor, _ in replay_evals(run["evals"], **thresholds)]


def score(runs: list[dict], **thresholds) -> dict:
    tp = fp = fn = tn = 0
    delays, missed = [], 0
    for run in runs:
        seq = replay(run, **thresholds)
        for _, flagged, truth in seq:
            tp += flagged and truth
            fp += flagged and not truth
            fn += truth and not flagged
            tn += not (flagged or truth)
        onset = next((s for s, _, truth in seq if truth), None)
        if onset is not None:
            flag = next((s for s, flagged, _ in seq if flagged and s >= onset), None)
            if flag is None:
                missed += 1
            else:
                delays.append(flag - onset)
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"runs": len(runs), "evaluations": tp + fp + fn + tn, "collapsed": tp + fn, "tp": tp, "fp": fp,
            "fn": fn, "tn": tn, "precision": precision, "recall": recall, "f1": f1,
            "median_delay": statistics.median(delays) if delays else None,
            "runs_collapsed_never_flagged": missed}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("--fit", default="ring8", help="the dataset the threshold is chosen on (default ring8)")
    args = p.parse_args(argv)
    runs = load(args.results)
    datasets = sorted({r["dataset"] for r in runs})
    fit = [r for r in runs if r["dataset"] == args.fit]
    default = Monitor().collapse_diversity
    best = max(GRID, key=lambda t: (score(fit, collapse_diversity=t)["f1"], t == default)) if fit else default
    print(f"collapse_diversity chosen on {args.fit} ({len(fit)} runs): {best} (the monitor's default: {default})")
    print("| dataset | threshold | runs | evaluations | collapsed | precision | recall | median steps onset → flag "
          "| collapsed runs never flagged |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ds in datasets:
        part = [r for r in runs if r["dataset"] == ds]
        for name, t in (("default", default), ("fitted", best)):
            s = score(part, collapse_diversity=t)
            held = "" if ds == args.fit else " (held out)"
            print(f"| {ds}{held} | {name} {t} | {s['runs']} | {s['evaluations']} | {s['collapsed']} | "
                  f"{s['precision']:.2f} | {s['recall']:.2f} | {s['median_delay']} | "
                  f"{s['runs_collapsed_never_flagged']} |")


if __name__ == "__main__":
    main()
