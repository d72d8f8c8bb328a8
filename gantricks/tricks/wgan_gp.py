"""WGAN-GP gradient penalty (Gulrajani et al. 2017, arXiv:1704.00028, Eq. 3 and Alg. 1).

    λ · E_x̂ [ (‖∇_x̂ D(x̂)‖₂ - 1)² ],   x̂ = ε x + (1 - ε) x̃,   ε ~ U[0, 1] per sample,

x real and x̃ fake, as D sees them (after the D-input hooks). λ = 10.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .base import StepContext
from .common import register_trick, require
from .penalties import GradientPenalty, check_weight, input_gradient, per_sample_norm


def interpolate(real: Tensor, fake: Tensor, eps: Tensor | None = None) -> Tensor:
    """ε·real + (1-ε)·fake with one ε ~ U[0, 1] per sample (broadcast over the other dims)."""
    require(real.shape == fake.shape, f"wgan-gp: real and fake batches differ in shape "
                                      f"({tuple(real.shape)} vs {tuple(fake.shape)})")
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    eps = eps.reshape(-1, *([1] * (real.dim() - 1)))
    return eps * real + (1 - eps) * fake    # no detach: under an unrolled D the fakes carry G's graph


def wgan_gp_penalty(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, target: float = 1.0,
                    eps: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(E[(‖∇D(x̂)‖ - target)²], the per-sample norms) at random interpolates x̂ (Gulrajani et al. 2017,
    arXiv:1704.00028, Eq. 3); multiply by λ (10)."""
    norms = per_sample_norm(input_gradient(D, interpolate(real, fake, eps)))
    return (norms - target).pow(2).mean(), norms


@register_trick("wgan-gp", paper="Gulrajani et al. 2017, arXiv:1704.00028, Alg. 1",
                summary="lambda*(||grad D(x_hat)|| - 1)^2 at random real/fake interpolates")
class WGANGP(GradientPenalty):
    """WGAN-GP penalty with ``weight`` λ (10) and ``target`` norm (1)."""

    def __init__(self, weight: float = 10.0, target: float = 1.0, every: int = 1):
        super().__init__(every)
        self.weight, self.target = check_weight(self.name, weight), check_weight(self.name, target, "target")

    def penalty(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        value, norms = wgan_gp_penalty(ctx.D, ctx.real_in, ctx.fake_in, self.target)
        return self.weight * value, norms
