"""Noisy labels (ganhacks #6, Chintala et al. 2016, github.com/soumith/ganhacks).

Each of D's targets is drawn on its own, uniformly: real ones from
[real_low, real_high] (0.7-1.2), fake ones from [fake_low, fake_high] (0.0-0.3).
Any range is accepted. With a cross-entropy loss a target above 1 has no
minimum (D gains by pushing that logit up forever); ganhacks suggests it anyway,
so it is allowed, but a range inside [0, 1] is the safe choice there.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import TARGETS, Trick
from .common import register_trick, require


def uniform_targets(like: Tensor, low: float, high: float) -> Tensor:
    """One target per sample, uniform on [low, high], with ``like``'s shape and device (noisy labels,
    ganhacks #6, Chintala et al. 2016)."""
    return low + (high - low) * torch.rand(like.shape, device=like.device)


@register_trick("noisy-labels", paper="ganhacks #6 (Chintala et al. 2016, github.com/soumith/ganhacks)",
                summary="D's targets drawn per sample: real U[0.7, 1.2], fake U[0.0, 0.3]")
class NoisyLabels(Trick):
    """D's real and fake targets drawn per sample from two ranges."""

    touches = (TARGETS,)
    needs_targets = True
    exclusive = ("the real targets", "the fake targets")

    def __init__(self, real_low: float = 0.7, real_high: float = 1.2, fake_low: float = 0.0,
                 fake_high: float = 0.3):
        for side, low, high in (("real", real_low, real_high), ("fake", fake_low, fake_high)):
            require(low <= high, f"trick 'noisy-labels': {side}_low ({low}) must be <= {side}_high ({high})")
        self.real, self.fake = (float(real_low), float(real_high)), (float(fake_low), float(fake_high))

    def targets(self, real_t: Tensor, fake_t: Tensor, gan) -> tuple[Tensor, Tensor]:
        return uniform_targets(real_t, *self.real), uniform_targets(fake_t, *self.fake)
