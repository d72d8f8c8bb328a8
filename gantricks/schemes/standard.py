"""The standard alternating scheme (Goodfellow et al. 2014, Algorithm 1)."""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from ..registry import schemes
from .base import Scheme


@schemes.register("standard", paper="Goodfellow et al. 2014, arXiv:1406.2661, Alg. 1",
                  summary="n_critic D updates, then one G update")
class Standard(Scheme):
    """``n_critic`` D updates on fresh real batches and fresh noise, then one G update."""

    name = "standard"

    def step(self, gan, next_real: Callable[[], Tensor]) -> dict[str, float]:
        logs: dict[str, Tensor] = {}
        for _ in range(gan.n_critic):
            real = next_real()
            fake = gan.generate(real.shape[0]).detach()
            d_total, d_logs = gan.discriminator_loss(gan.D, real, fake)
            gan.update("D", d_total, logs)
            logs.update(d_logs)
        with gan.frozen("D"):
            fake = gan.generate(real.shape[0])
            g_total, g_logs = gan.generator_loss(gan.D, fake, real)
            gan.update("G", g_total, logs)
        logs.update(g_logs)
        return logs
