"""One-sided label smoothing (Salimans et al. 2016, arXiv:1606.03498, §3.4).

D's real targets 1 become ``real`` (0.9); the fake targets stay 0, since smoothing
them too would reward G's samples where there are no data. G's targets are
untouched.
"""
from __future__ import annotations

from torch import Tensor

from .base import TARGETS, Trick
from .common import register_trick, require


def smooth_real_targets(real_t: Tensor, real: float = 0.9) -> Tensor:
    """Real targets scaled so that 1 becomes ``real`` (one-sided, Salimans et al. 2016, arXiv:1606.03498, §3.4)."""
    return real_t * real


@register_trick("label-smoothing", paper="Salimans et al. 2016, arXiv:1606.03498, §3.4",
                summary="one-sided: D's real targets 1 -> real (0.9), fake targets stay 0")
class LabelSmoothing(Trick):
    """One-sided label smoothing of D's real targets."""

    touches = (TARGETS,)
    needs_targets = True
    exclusive = ("the real targets",)

    def __init__(self, real: float = 0.9):
        require(0 < real <= 1, f"trick 'label-smoothing': real must be in (0, 1], got {real}")
        self.real = float(real)

    def targets(self, real_t: Tensor, fake_t: Tensor, gan) -> tuple[Tensor, Tensor]:
        return smooth_real_targets(real_t, self.real), fake_t
