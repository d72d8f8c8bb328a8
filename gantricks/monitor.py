"""Live diagnosis: cheap signals watched inside the training loop, and flags that name tricks.

Signals: the losses (every step), and D's accuracy on real and fake, the gap between D(real)
and D(fake), gradient norms of G and D (every step they are computed: ``gantricks train``
computes them every ``diagnose_every`` steps; each rule's window is in steps). At each evaluation: sample
diversity (mean pairwise distance of generated samples over that of real ones) and,
where the data has known modes, coverage.

Flags, raised at the step where the condition starts (once, until it clears):

=====================  =========================================================
``mode-collapse``      diversity below ``collapse_diversity`` of the data's, or
                       under half the modes covered while most samples are sharp,
                       or (known modes) the same modes without a single sharp
                       sample at two evaluations running, more of them than
                       chance allows (a partial collapse; the test is below)
``discriminator-wins`` D classifies real and fake almost perfectly over a window
                       (G's gradient signal is vanishing or useless)
``divergence``         a loss or gradient norm far above its running median, or
                       NaN/inf
``discriminator-      D scores held-out real images (kept aside by the data,
overfits``             ``mnist5k:n=N``) far below the training images: they have
                       crossed more than ``overfit_share`` of the way from the
                       training images' mean output to the fakes' (the measure of
                       Karras et al. 2020, Fig. 1; :mod:`gantricks.metrics.overfit`)
``oscillation``        the D(real)-D(fake) gap swings far beyond its noise and
                       keeps reversing, or the generator hops between modes
                       (the mode histogram changes by more than half between
                       evaluations)
=====================  =========================================================

The partial-collapse test. With ``n1`` and ``n2`` sharp samples at two evaluations running, the
hypothesis "G still makes every mode, at no less than ``partial_share`` of an even share"
gives each set of ``m`` modes a chance of at most ``(1 - partial_share·m/K)^(n1+n2)`` to be empty
at both (the evaluations draw independent samples). Over all ``C(K, m)`` sets of ``m`` modes, ``m``
or more modes empty at both has a chance of at most ``C(K, m)·(1 - partial_share·m/K)^(n1+n2)``
(the union bound). The flag is raised when that bound is below ``partial_alpha``: so it needs no
minimum count per mode, and fires on few sharp samples when they keep missing the same modes
(ring8, 24 sharp samples of 2,500 at each evaluation, three modes empty at both: bound 0.003),
while a mode that is rare rather than gone (half its share) or a lone empty mode among many
(25 modes, 5 sharp samples each: 0.2) is not flagged.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

REMEDIES = {
    # in the order of what rescued the collapse protocol over 10 seeds (BENCHMARKS.md §9j): a D that keeps up
    # with G (its rate 4x G's, or 5 D steps per G step) and minibatch stddev on both mixtures, packing on the
    # ring, exact unrolling partly. Minibatch discrimination in the authors' form did not (§9o: the ring
    # collapsed in 3 of 3 runs at 10k steps, the grid partly, at 12x a baseline run's cost)
    "mode-collapse": ["lr_d = 4 x lr_g (TTUR)", "n_critic=5", "minibatch-stddev", "pacgan", "unrolled"],
    "discriminator-wins": ["label-smoothing", "instance-noise", "noisy-labels", "spectral-norm", "r1",
                           "lower lr_d (TTUR)"],
    "divergence": ["spectral-norm", "wgan-gp", "r1", "lower learning rates", "on_nonfinite=rollback"],
    "oscillation": ["ema", "r1", "replay", "unrolled", "lower lr_g than lr_d (TTUR)"],
    "discriminator-overfits": ["diffaugment", "ada", "cr", "lecam", "more training images"],
}


# The discriminator-overfits threshold (BENCHMARKS.md §12), set from the runs on 500 digits: there the baseline's
# share climbs steadily in every seed (0.03-0.05 at step 250, 0.16-0.20 at step 1,000, 0.24-0.25 at step 2,000),
# while no DiffAugment run on 500 digits went above 0.12 and no run on 4,500 digits above 0.09.
OVERFIT_SHARE = 0.15


@dataclass
class Flag:
    name: str
    step: int
    detail: str

    def message(self) -> str:
        return f"[{self.name}] at step {self.step}: {self.detail}; try: {', '.join(REMEDIES[self.name])}"

    def to_record(self) -> dict[str, Any]:
        return {"kind": "flag", "step": self.step, "flag": self.name, "detail": self.detail,
                "remedies": REMEDIES[self.name]}


def partial_collapse_bound(m: int, k: int, sharp: int, share: float = 0.5) -> float:
    """An upper bound on the chance that ``m`` or more of ``k`` modes get none of ``sharp`` samples (two
    evaluations together), if each mode is made at ``share`` of an even share or more: the union bound
    ``C(k, m)·(1 - share·m/k)^sharp`` (1.0 when ``m`` is 0). See the module docstring."""
    if m <= 0 or k <= 0:
        return 1.0
    log_bound = math.lgamma(k + 1) - math.lgamma(m + 1) - math.lgamma(k - m + 1) \
        + sharp * math.log1p(-min(share * m / k, 1.0 - 1e-12))
    return min(1.0, math.exp(log_bound))


def pairwise_diversity(x: Tensor, max_n: int = 1000) -> float:
    """Mean Euclidean distance between distinct samples (flattened), on at most ``max_n`` of them."""
    x = x.detach().flatten(1)[:max_n].double()
    n = len(x)
    if n < 2:
        return 0.0
    d = torch.cdist(x, x)
    return float(d.sum() / (n * (n - 1)))


@dataclass
class Monitor:
    """Watches the logs of each step and each evaluation; returns new flags."""

    window: int = 200                 # steps in the short window (D accuracy, losses)
    win_accuracy: float = 0.97        # both D accuracies above this over a window: D wins
    divergence_factor: float = 50.0   # a grad norm / |loss| this many times its running median
    # generated diversity / real diversity below this: collapse. 0.6 was chosen on ring8 runs of the collapse
    # protocol against the all-samples truth and held out on grid25 (BENCHMARKS.md §9l; it was 0.3 before)
    collapse_diversity: float = 0.6
    oscillation_ratio: float = 3.0    # swing of the D(real)-D(fake) gap over its noise level (x10)
    mode_hop_tv: float = 0.5          # total variation between successive mode histograms: hopping
    partial_share: float = 0.5        # a mode made at this fraction of an even share or more is not gone
    partial_alpha: float = 0.01       # the chance bound under which modes empty twice are a partial collapse
    overfit_share: float = OVERFIT_SHARE   # held-out images past this share of the train-to-fake gap: D overfits
    active: dict[str, Flag] = field(default_factory=dict)
    history: list[Flag] = field(default_factory=list)

    def __post_init__(self):
        # the step signals may come every step or every few steps (``gantricks train`` computes D's accuracies,
        # mean logits and the gradient norms every ``diagnose_every`` steps): windows are measured in steps,
        # each signal kept as (step, value)
        self._acc: deque = deque()
        self._gap: deque = deque()
        self._gap_bucket = 0              # the last window // 4 block of steps whose oscillation was judged
        self._last_step = -1              # the last step observed (a step not after it: a rollback)
        self._norms: dict[str, deque] = {}
        self._first: dict[str, int] = {}  # the step of each signal's first value
        self._medians: dict[str, float] = {}
        self._diverged_at = -1            # the last step with an exploding or non-finite value
        self._last_modes: np.ndarray | None = None
        self._empty: set[int] = set()     # modes with no sharp sample at the last evaluation
        self._sharp = 0                   # its number of sharp samples
        self._empty_step = 0              # the step of the evaluation since which the dropped modes are empty
        self.partial_bound: float | None = None   # the last evaluation's chance bound (1.0: nothing to test)

    def state_dict(self) -> dict[str, Any]:
        """What the rules remember, as plain numbers and lists (kept in checkpoints, so that a resumed run
        raises the flags an uninterrupted one would: a flag standing at the checkpoint is not raised again).
        ``history`` is not kept: the run's ``metrics.jsonl`` has every flag."""
        return {"active": {k: [f.name, int(f.step), f.detail] for k, f in self.active.items()},
                "acc": [[int(t), float(v)] for t, v in self._acc], "gap": [[int(t), float(v)] for t, v in self._gap],
                "gap_bucket": int(self._gap_bucket), "last_step": int(self._last_step),
                "norms": {k: [float(v) for v in d] for k, d in self._norms.items()},
                "first": {k: int(v) for k, v in self._first.items()},
                "medians": {k: float(v) for k, v in self._medians.items()}, "diverged_at": int(self._diverged_at),
                "last_modes": None if self._last_modes is None else [float(v) for v in self._last_modes],
                "empty": sorted(int(m) for m in self._empty), "sharp": int(self._sharp),
                "empty_step": int(self._empty_step),
                "partial_bound": None if self.partial_bound is None else float(self.partial_bound)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take up :meth:`state_dict`'s state (``ValueError`` if it is not one)."""
        try:
            active = {k: Flag(str(n), int(t), str(d)) for k, (n, t, d) in state["active"].items()}
            acc = deque((int(t), float(v)) for t, v in state["acc"])
            gap = deque((int(t), float(v)) for t, v in state["gap"])
            norms = {str(k): deque(map(float, d), maxlen=self.window * 5) for k, d in state["norms"].items()}
            first = {str(k): int(v) for k, v in state["first"].items()}
            medians = {str(k): float(v) for k, v in state["medians"].items()}
            modes = state["last_modes"]
            last_modes = None if modes is None else np.asarray(modes, dtype=np.float64)
            bound = state["partial_bound"]
            scalars = (int(state["gap_bucket"]), int(state["last_step"]), int(state["diverged_at"]),
                       {int(m) for m in state["empty"]}, int(state["sharp"]), int(state["empty_step"]),
                       None if bound is None else float(bound))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"not a monitor state ({type(err).__name__}: {err})") from None
        self.active, self._acc, self._gap, self._norms = active, acc, gap, norms
        self._first, self._medians, self._last_modes = first, medians, last_modes
        (self._gap_bucket, self._last_step, self._diverged_at, self._empty, self._sharp, self._empty_step,
         self.partial_bound) = scalars

    def _raise(self, name: str, step: int, detail: str, on: bool) -> list[Flag]:
        if on and name not in self.active:
            flag = Flag(name, step, detail)
            self.active[name] = flag
            self.history.append(flag)
            return [flag]
        if not on:
            self.active.pop(name, None)
        return []

    def observe_step(self, step: int, logs: dict[str, float]) -> list[Flag]:
        """A step's logs. The losses may come every step and the diagnostics (D's accuracies and mean logits,
        the gradient norms) on fewer steps: each rule reads the values of its own window of steps."""
        flags: list[Flag] = []
        if step <= self._last_step:      # a rollback to a checkpoint: the step windows start again from here
            for key, values in (("acc", self._acc), ("gap", self._gap)):
                values.clear()
                self._first.pop(key, None)
            self._gap_bucket = 0
        self._last_step = step
        if "d_acc_real" in logs and "d_acc_fake" in logs:
            full = self._append(self._acc, "acc", step, min(logs["d_acc_real"], logs["d_acc_fake"]), self.window)
            mean_acc = sum(v for _, v in self._acc) / len(self._acc)
            flags += self._raise("discriminator-wins", step, f"D's accuracy on real and fake has stayed above "
                                 f"{self.win_accuracy:.0%} for {self.window} steps (mean {mean_acc:.1%})",
                                 full and mean_acc > self.win_accuracy)
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        exploded = []
        for key in ("grad_norm_d", "grad_norm_g", "d_loss", "g_loss"):
            if key not in logs or not math.isfinite(logs[key]):
                continue
            hist = self._norms.setdefault(key, deque(maxlen=self.window * 5))
            value = abs(logs[key])
            if step - self._first.setdefault(key, step) >= self.window:      # a window of history behind it
                if step % 16 == 0 or key not in self._medians:    # a median of 1000 values is not free
                    self._medians[key] = float(np.median(hist))
                med = self._medians[key]
                if med > 0 and value > self.divergence_factor * med and value > 1.0:
                    exploded.append(f"{key} {value:.3g} vs median {med:.3g}")
            hist.append(value)
        if bad or exploded:
            self._diverged_at = step
        # one flag per episode: spikes a few steps apart are one divergence, not one flag each; it clears
        # after a window without any
        recent = "divergence" in self.active and step - self._diverged_at < self.window
        flags += self._raise("divergence", step, "non-finite " + ", ".join(bad) if bad else "; ".join(exploded),
                             bool(bad or exploded) or recent)
        if "d_real" in logs and "d_fake" in logs and math.isfinite(logs["d_real"] - logs["d_fake"]):
            full = self._append(self._gap, "gap", step, logs["d_real"] - logs["d_fake"], self.window * 5)
            block = step // max(self.window // 4, 1)
            if full and block > self._gap_bucket:
                self._gap_bucket = block
                flags += self._raise("oscillation", step, *self._oscillation())
        return flags

    def _append(self, values: deque, key: str, step: int, value: float, span: int) -> bool:
        """Keep ``(step, value)`` and the values of the last ``span`` steps; True once they cover ``span``."""
        values.append((step, value))
        while values[0][0] <= step - span:
            values.popleft()
        return step - self._first.setdefault(key, step) >= span - 1

    def _dropped(self, counts) -> list[int]:
        """Modes empty now and at the last evaluation, when more of them are empty at both than a G still
        making every mode would leave by chance (:func:`partial_collapse_bound` under ``partial_alpha``)."""
        if not counts:
            self._empty, self._sharp, self.partial_bound = set(), 0, None
            return []
        empty = {k for k, c in enumerate(counts) if c == 0}
        both = sorted(empty & self._empty)
        self.partial_bound = partial_collapse_bound(len(both), len(counts), self._sharp + sum(counts),
                                                    self.partial_share)
        self._empty, self._sharp = empty, sum(counts)
        return both if both and self.partial_bound < self.partial_alpha else []

    def _oscillation(self) -> tuple[str, bool]:
        """Block means of the D(real)-D(fake) gap that swing far beyond their noise and keep reversing.

        The values may come every step or every few steps. The swing is judged against the noise a block mean
        would have with a value every step (so the threshold is the same in the gap's units either way); a
        reversal counts only between moves that stand out of the block means' own noise (fewer values a block:
        noisier means, whose random ups and downs are not a swing)."""
        size = max(self.window // 4, 2)
        steps, gaps = (np.asarray(c) for c in zip(*self._gap))
        block = (steps - steps[0]) // size           # blocks of ``size`` steps from the window's first value
        counts = np.bincount(block)
        whole = counts >= 0.5 * counts.max()         # (a block cut short at the window's end is left out)
        means = np.bincount(block, weights=gaps)[whole] / counts[whole]
        if len(gaps) < 3 or len(means) < 4:    # values too far apart to see a swing reverse
            return "too few values", False
        sigma = np.diff(gaps).std() / math.sqrt(2)   # one value's noise, from value-to-value changes
        noise = sigma / math.sqrt(size)
        amplitude = float(means.max() - means.min())
        moves = np.diff(means)
        # a move between two block means beyond twice the noise of their difference
        moves = moves[np.abs(moves) > 2 * math.sqrt(2 / counts[whole].mean()) * sigma]
        reversals = int((moves[1:] * moves[:-1] < 0).sum())
        on = amplitude > 1.0 and amplitude > self.oscillation_ratio * 10 * noise and reversals >= 3
        return (f"the D(real)-D(fake) gap swings by {amplitude:.2f} and reversed {reversals} times over "
                f"the last {int(steps[-1] - steps[0]) + 1} steps", on)

    def observe_eval(self, step: int, samples: Tensor, real: Tensor, metrics: dict[str, Any]) -> list[Flag]:
        """Judge an evaluation's samples: their diversity against the data's goes into ``metrics``
        (``diversity_ratio``), then :meth:`judge_eval` reads the metrics."""
        div_fake, div_real = pairwise_diversity(samples), pairwise_diversity(real)
        metrics["diversity_ratio"] = div_fake / div_real if div_real > 0 else 1.0
        return self.judge_eval(step, metrics)

    def judge_eval(self, step: int, metrics: dict[str, Any]) -> list[Flag]:
        """The evaluation rules on an evaluation's metrics alone (as ``metrics.jsonl`` records them), so that a
        finished run's evaluations can be replayed (``benchmarks/monitor_accuracy.py``)."""
        ratio = metrics.get("diversity_ratio", 1.0)
        reasons = []
        if ratio < self.collapse_diversity:
            reasons.append(f"sample diversity is {ratio:.0%} of the data's")
        sharp = metrics.get("high_quality_pct")   # None where every sample counts (Stacked MNIST modes)
        if "modes_covered" in metrics and (sharp is None or sharp >= 50) \
                and metrics["modes_covered"] < 0.5 * metrics["modes"]:
            reasons.append(f"{metrics['modes_covered']} of {metrics['modes']} modes covered"
                           + (f" with {sharp:.0f}% sharp samples" if sharp is not None else ""))
        counts = metrics.get("mode_counts")
        dropped = self._dropped(counts)
        if dropped and not reasons:
            kind = "sharp sample" if sharp is not None else "sample"
            reasons.append(f"{len(dropped)} of {len(counts)} modes (modes {', '.join(map(str, dropped))}) have "
                           f"had no {kind} since the evaluation at step {self._empty_step}, while the others "
                           f"had some: a chance of at most {self.partial_bound:.1g} for a G that still makes them")
        if counts and not dropped:
            self._empty_step = step
        flags = self._raise("mode-collapse", step, " and ".join(reasons), bool(reasons))
        if metrics.get("d_overfit") is not None:
            share = metrics["d_overfit"]
            flags += self._raise("discriminator-overfits", step, f"D scores held-out real images {share:.0%} of the "
                                 f"way from the training images ({metrics['d_seen']:.2f}) to the fakes "
                                 f"({metrics['d_fake_eval']:.2f}): it is memorising the training set",
                                 share > self.overfit_share)
        # hopping is read only from histograms of many sharp samples; a few stray hits are noise
        if counts and sum(counts) >= max(100, 0.2 * metrics.get("samples", 0)):
            p = np.asarray(counts, dtype=np.float64) / sum(counts)
            if self._last_modes is not None and len(self._last_modes) == len(p):
                tv = 0.5 * float(np.abs(p - self._last_modes).sum())
                metrics["mode_shift"] = tv
                flags += self._raise("oscillation", step, f"the generator hops between modes: {tv:.0%} of its "
                                     f"sharp samples moved to other modes since the last evaluation",
                                     tv > self.mode_hop_tv)
            self._last_modes = p
        else:
            self._last_modes = None
        return flags
