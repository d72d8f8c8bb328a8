"""Instance noise (Sønderby et al. 2016, arXiv:1610.04490, §3.1; Arjovsky & Bottou 2017, arXiv:1701.04862, §3.1).

Gaussian noise of std σ_t is added to every input of D, real and fake, in both
D's and G's step. The noisy real and fake distributions overlap, so D cannot
separate them perfectly and G's gradient does not vanish. σ_t goes from
``sigma`` to 0 over ``anneal_steps`` G steps (``schedule``: linear as in
Sønderby et al., cosine, or constant).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from .base import D_INPUTS, Trick
from .common import register_trick, require

Schedule = Literal["linear", "cosine", "constant"]


def noise_std(sigma: float, step: int, anneal_steps: int, schedule: Schedule = "linear") -> float:
    """Instance noise's σ_t: ``sigma`` at step 0, 0 from ``anneal_steps`` on (never for "constant")
    (Sønderby et al. 2016, arXiv:1610.04490, §3.1)."""
    if schedule == "constant":
        return sigma
    progress = min(1.0, step / anneal_steps) if anneal_steps > 0 else 1.0
    if schedule == "linear":
        return sigma * (1.0 - progress)
    return sigma * 0.5 * (1.0 + math.cos(math.pi * progress))


def add_instance_noise(x: Tensor, std: float) -> Tensor:
    """x + N(0, std²) per element: instance noise (Sønderby et al. 2016, arXiv:1610.04490, §3.1)."""
    return x + std * torch.randn_like(x) if std > 0 else x


@register_trick("instance-noise", paper="Sønderby et al. 2016, arXiv:1610.04490; Arjovsky & Bottou 2017",
                summary="Gaussian noise on all of D's inputs, std sigma annealed to 0 over anneal_steps")
class InstanceNoise(Trick):
    """Gaussian instance noise on real and fake D inputs, annealed by ``gan.step_count``."""

    touches = (D_INPUTS,)
    order = 80   # after replay and packing: noise on exactly what D reads

    def __init__(self, sigma: float = 0.1, anneal_steps: int = 5000, schedule: Schedule = "linear"):
        require(sigma >= 0, f"trick 'instance-noise': sigma must be >= 0, got {sigma}")
        require(anneal_steps >= 0, f"trick 'instance-noise': anneal_steps must be >= 0, got {anneal_steps}")
        self.sigma, self.anneal_steps, self.schedule = float(sigma), int(anneal_steps), schedule

    def d_inputs(self, real: Tensor | None, fake: Tensor, gan, phase: str) -> tuple[Tensor | None, Tensor]:
        std = noise_std(self.sigma, gan.step_count, self.anneal_steps, self.schedule)
        return (None if real is None else add_instance_noise(real, std)), add_instance_noise(fake, std)
