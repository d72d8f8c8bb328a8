"""When a run on data with known modes counts as collapsed: the definition the bench's verdicts and the
monitor's measured precision/recall (``benchmarks/monitor_accuracy.py``) share.

An evaluation is **collapsed** when its high-quality samples (PROTOCOLS.md: within 3 std of a centre)
cover at most half of the modes, or cover more but so unevenly that the reverse KL to uniform exceeds
log 2, the KL of samples spread evenly over half of the modes. No sharp sample at all (KL = inf) is
collapsed. A run that spreads a blurred ring over every mode with a few sharp samples on each is *not*
collapsed by this rule: that is poor sample quality, which the high-quality % measures.

That rule counts only sharp samples, so a G spread thinly over the plane early in training (few samples
within 3 std of any mode) also counts as collapsed. A second reading, by mass, looks at every sample's
nearest mode instead (``nearest_counts`` of :func:`gantricks.metrics.mixture_coverage`): an evaluation is
**collapsed by mass** when that histogram is at least as uneven as an even spread over half of the modes,
a reverse KL to uniform of log 2 or more. A blob on one mode, or between two, is collapsed by both
readings; a G spread thinly over every mode is collapsed by the first only. The mass reading's blind spot: a
blob about equally near every mode (the ring's centre, where an average of a G that hops round the ring lands:
BENCHMARKS.md §9q, EMA) has an even nearest-mode histogram, and is collapsed by the first reading only.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from .metrics.mixture import reverse_kl

KL_HALF = math.log(2.0)


def is_collapsed(modes_covered: int, modes: int, reverse_kl: float) -> bool:
    """The definition above, for one evaluation of a ``modes``-mode mixture."""
    return modes_covered <= modes / 2 or not reverse_kl <= KL_HALF


def collapsed_counts(mode_counts: Sequence[int]) -> bool:
    """:func:`is_collapsed` from an evaluation's sharp samples per mode."""
    return is_collapsed(sum(1 for c in mode_counts if c > 0), len(mode_counts), reverse_kl(mode_counts))


def collapsed_mass(nearest_counts: Sequence[int]) -> bool:
    """Collapsed by mass: every sample's nearest mode, a reverse KL to uniform of at least log 2."""
    return not reverse_kl(nearest_counts) < KL_HALF


def verdict(collapsed_share: float, baseline_share: float | None) -> str:
    """Whether a cell rescues the collapse, from the shares of its and the baseline's runs collapsed at the end."""
    if baseline_share is None or baseline_share < 0.5:
        return "no collapse to rescue"
    if collapsed_share <= 0.2:
        return "rescues"
    if collapsed_share <= baseline_share - 0.3:
        return "partly"
    return "no"


def hopping_stats(results: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """Over runs with per-evaluation mode counts: mean modes covered per evaluation, mean modes visited over
    all evaluations of a run, and the share of runs collapsed at their last evaluation."""
    counts = [[e["mode_counts"] for e in r.get("evals") or [] if e.get("mode_counts") is not None] for r in results]
    counts = [c for c in counts if c]
    if not counts:
        return None
    per_eval = [sum(1 for c in at if c > 0) for run in counts for at in run]
    visited = [sum(1 for column in zip(*run) if any(column)) for run in counts]
    return {"runs": len(counts), "modes_per_eval": sum(per_eval) / len(per_eval),
            "modes_visited": sum(visited) / len(visited),
            "collapsed_share": sum(collapsed_counts(run[-1]) for run in counts) / len(counts)}
