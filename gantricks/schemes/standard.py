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

    Args:
        simultaneous: G's update and D's (last) update are both computed from the same state,
            on one real batch and one fake batch, as simultaneous gradient descent (the Unrolled
            GAN notebook's ``sess.run`` of both updates): G steps against D before D's update,
            and D's update sees G's fakes from before G's update. Default: alternating
            (Goodfellow et al. 2014, Alg. 1), D first, then G on fresh noise against the updated D.

    The step is split in overridable parts so that a scheme which differs only in
    what G's loss is computed against (unrolled, lookahead) overrides ``generator_loss``.
    """

    name = "standard"
    simultaneous = False       # a subclass without the option (mrgan) alternates

    def __init__(self, simultaneous: bool = False):
        self.simultaneous = simultaneous

    def step(self, gan: "GAN", next_real: Callable[[], Tensor]) -> dict[str, Tensor]:
        logs: dict[str, Tensor] = {}
        if not self.simultaneous:
            real = self.discriminator_updates(gan, next_real, logs, gan.n_critic)
            self.generator_update(gan, real, next_real, logs)
            return logs
        self.discriminator_updates(gan, next_real, logs, gan.n_critic - 1)
        real = next_real()
        fake = self.generator_update(gan, real, next_real, logs)   # against D before its update ...
        self.discriminator_update(gan, real, fake.detach(), logs)  # ... which sees G's fakes before G's
        return logs

    def discriminator_updates(self, gan: "GAN", next_real: Callable[[], Tensor], logs: dict, n: int
                              ) -> Tensor | None:
        """``n`` D updates, each on a fresh real batch and fresh noise; returns the last real batch."""
        real = None
        for _ in range(n):
            real = next_real()
            with torch.no_grad():     # D's update needs no graph through G (G(z).detach() would record one)
                fake = gan.generate(real.shape[0])
            self.discriminator_update(gan, real, fake, logs)
        return real

    def discriminator_update(self, gan: "GAN", real: Tensor, fake: Tensor, logs: dict) -> None:
        """One D update on ``real`` and a fake batch without grad."""
        d_total, d_logs = gan.discriminator_loss(gan.D, real, fake)
        gan.update("D", d_total, logs)
        logs.update(d_logs)

    def generator_update(self, gan: "GAN", real: Tensor, next_real: Callable[[], Tensor], logs: dict) -> Tensor:
        """One G update on fresh noise (D frozen); returns G's batch (with its graph)."""
        with gan.frozen("D"):
            fake = gan.generate(real.shape[0])
            g_total, g_logs = self.generator_loss(gan, fake, real, next_real)
            gan.update("G", g_total, logs)
        logs.update(g_logs)
        return fake

    def generator_loss(self, gan: "GAN", fake: Tensor, real: Tensor, next_real: Callable[[], Tensor]
                       ) -> tuple[Tensor, dict[str, Tensor]]:
        """G's loss for its batch ``fake`` (with grad), against the current D."""
        return gan.generator_loss(gan.D, fake, real)
