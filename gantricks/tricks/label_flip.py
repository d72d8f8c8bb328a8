"""Label flipping (ganhacks #6, Chintala et al. 2016, github.com/soumith/ganhacks).

Each of D's targets is swapped with probability ``p``: a flipped real sample
takes the target of a random fake sample and a flipped fake sample the target of
a random real one (so with label smoothing a flipped fake is labelled 0.9). It
runs after the other target tricks (``order``). G's targets are untouched.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import TARGETS, Trick
from .common import register_trick, require


def flip_targets(real_t: Tensor, fake_t: Tensor, p: float) -> tuple[Tensor, Tensor]:
    """Swap each target with probability ``p`` for one drawn from the other side (label flips, ganhacks #6,
    Chintala et al. 2016)."""
    flip_real = torch.rand(real_t.shape, device=real_t.device) < p
    flip_fake = torch.rand(fake_t.shape, device=fake_t.device) < p
    from_fake = fake_t[torch.randint(len(fake_t), real_t.shape, device=fake_t.device)]
    from_real = real_t[torch.randint(len(real_t), fake_t.shape, device=real_t.device)]
    return torch.where(flip_real, from_fake, real_t), torch.where(flip_fake, from_real, fake_t)


@register_trick("label-flip", paper="ganhacks #6 (Chintala et al. 2016, github.com/soumith/ganhacks)",
                summary="swap D's real/fake targets per sample with probability p")
class LabelFlip(Trick):
    """Swap D's real and fake targets per sample with probability ``p``."""

    touches = (TARGETS,)
    needs_targets = True
    order = 90   # after label-smoothing / noisy-labels, so a flip swaps their values

    def __init__(self, p: float = 0.05):
        require(0 <= p <= 1, f"trick 'label-flip': p must be in [0, 1], got {p}")
        self.p = float(p)

    def targets(self, real_t: Tensor, fake_t: Tensor, gan) -> tuple[Tensor, Tensor]:
        return flip_targets(real_t, fake_t, self.p)
