"""The standard alternating scheme (Goodfellow et al. 2014, Algorithm 1)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor

from ..registry import schemes
from .base import Scheme

if TYPE_CHECKING:
    from ..gan import GAN


@schemes.register("standard", paper="Goodfellow et al. 2014, arXiv:1406.2661, Alg. 1",
                  summary="n_critic D updates, then one G update")
class Standard(Scheme):
    """``n_critic`` D updates on fresh real batches and fresh noise, then one G update.

    The step is split in three overridable parts so that a scheme which differs only in
    what G's loss is computed against (unrolled, lookahead) overrides ``generator_loss``.
    """

    name = "standard"

    def step(self, gan: "GAN", next_real: Callable[[], Tensor]) -> dict[str, Tensor]:
        logs: dict[str, Tensor] = {}
        real = self.discriminator_updates(gan, next_real, logs)
        self.generator_update(gan, real, next_real, logs)
        return logs

    def discriminator_updates(self, gan: "GAN", next_real: Callable[[], Tensor], logs: dict) -> Tensor:
        """``n_critic`` D updates, each on a fresh real batch and fresh noise; returns the last real batch."""
        for _ in range(gan.n_critic):
            real = next_real()
            with torch.no_grad():     # D's update needs no graph through G (G(z).detach() would record one)
                fake = gan.generate(real.shape[0])
            d_total, d_logs = gan.discriminator_loss(gan.D, real, fake)
            gan.update("D", d_total, logs)
            logs.update(d_logs)
        return real

    def generator_update(self, gan: "GAN", real: Tensor, next_real: Callable[[], Tensor], logs: dict) -> None:
        """One G update on fresh noise (D frozen)."""
        with gan.frozen("D"):
            fake = gan.generate(real.shape[0])
            g_total, g_logs = self.generator_loss(gan, fake, real, next_real)
            gan.update("G", g_total, logs)
        logs.update(g_logs)

    def generator_loss(self, gan: "GAN", fake: Tensor, real: Tensor, next_real: Callable[[], Tensor]
                       ) -> tuple[Tensor, dict[str, Tensor]]:
        """G's loss for its batch ``fake`` (with grad), against the current D."""
        return gan.generator_loss(gan.D, fake, real)
