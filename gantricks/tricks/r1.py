"""R1 regularization (Mescheder et al. 2018, arXiv:1801.04406, Eq. 9).

    (γ / 2) · E_x [ ‖∇_x D(x)‖₂² ]

on real data as D sees it: it pushes D's gradient to zero on the data, which
makes training locally convergent. No target norm. γ = 10 (the paper's default
for most experiments; StyleGAN2 tunes it per dataset and applies it every 16 steps).
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from .base import StepContext
from .common import register_trick
from .penalties import GradientPenalty, check_weight, input_gradient, per_sample_norm


def r1_penalty(D: Callable[[Tensor], Tensor], real: Tensor) -> tuple[Tensor, Tensor]:
    """(E[‖∇D(x)‖²] over the real batch, the per-sample norms) (Mescheder et al. 2018, arXiv:1801.04406,
    Eq. 9); multiply by γ/2."""
    norms = per_sample_norm(input_gradient(D, real))
    return norms.pow(2).mean(), norms


def r2_penalty(D: Callable[[Tensor], Tensor], fake: Tensor) -> tuple[Tensor, Tensor]:
    """(E[‖∇D(x̃)‖²] over the fake batch, the per-sample norms) (Mescheder et al. 2018, arXiv:1801.04406,
    Eq. 10): R1's penalty on G's samples; multiply by γ/2."""
    return r1_penalty(D, fake)


@register_trick("r1", paper="Mescheder et al. 2018, arXiv:1801.04406, Eq. 9",
                summary="gamma/2 * E||grad D(x_real)||^2: zero gradient on the data")
class R1(GradientPenalty):
    """R1 penalty with weight ``gamma`` (10), optionally lazy (``every``)."""

    def __init__(self, gamma: float = 10.0, every: int = 1):
        super().__init__(every)
        self.gamma = check_weight(self.name, gamma, "gamma")

    def penalty(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        value, norms = r1_penalty(ctx.D, ctx.real_in)
        return 0.5 * self.gamma * value, norms
