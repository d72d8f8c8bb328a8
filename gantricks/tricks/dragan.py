"""DRAGAN gradient penalty (Kodali et al. 2017, arXiv:1705.07215, §5; their official code).

    λ · E [ (‖∇_x̂ D(x̂)‖₂ - k)² ],   x̂ = x + α (x_p - x),   x_p = x + C · std(x) · u,

with x the real batch as D sees it, u ~ U[0, 1] per element, α ~ U[0, 1] per
sample, std(x) the standard deviation of all elements of the batch (numpy's
``minibatch.std()``, population std), C = 0.5, λ = 10 and k = 1, as in the
authors' ``get_perturbed_batch`` and penalty code. The perturbation keeps the
penalty local to the data manifold, unlike WGAN-GP's real-fake interpolates.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .base import StepContext
from .common import register_trick
from .penalties import GradientPenalty, check_weight, input_gradient, per_sample_norm


def dragan_points(real: Tensor, c: float = 0.5, noise: Tensor | None = None, alpha: Tensor | None = None) -> Tensor:
    """DRAGAN's perturbed points x + α (x_p - x), x_p = x + c·std(x)·u (Kodali et al. 2017, arXiv:1705.07215,
    §5 and their code); ``noise`` is u and ``alpha`` is α when given."""
    x = real
    if noise is None:
        noise = torch.rand_like(x)
    if alpha is None:
        alpha = torch.rand(x.shape[0], device=x.device, dtype=x.dtype)
    perturbed = x + c * x.detach().std(correction=0) * noise     # the scale is a constant of the batch
    return x + alpha.reshape(-1, *([1] * (x.dim() - 1))) * (perturbed - x)


def dragan_penalty(D: Callable[[Tensor], Tensor], real: Tensor, c: float = 0.5, target: float = 1.0,
                   noise: Tensor | None = None, alpha: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(E[(‖∇D(x̂)‖ - target)²], the per-sample norms) at perturbed real points x̂ (Kodali et al. 2017,
    arXiv:1705.07215, §5); multiply by λ (10)."""
    norms = per_sample_norm(input_gradient(D, dragan_points(real, c, noise, alpha)))
    return (norms - target).pow(2).mean(), norms


@register_trick("dragan", paper="Kodali et al. 2017, arXiv:1705.07215",
                summary="lambda*(||grad D(x_hat)|| - 1)^2 at perturbations x + C*std(x)*U[0,1] of real data")
class DRAGAN(GradientPenalty):
    """DRAGAN penalty with ``weight`` λ (10), ``target`` k (1) and perturbation scale ``c`` (0.5)."""

    def __init__(self, weight: float = 10.0, target: float = 1.0, c: float = 0.5, every: int = 1):
        super().__init__(every)
        self.weight, self.target = check_weight(self.name, weight), check_weight(self.name, target, "target")
        self.c = check_weight(self.name, c, "c")

    def penalty(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        value, norms = dragan_penalty(ctx.D, ctx.real_in, self.c, self.target)
        return self.weight * value, norms
