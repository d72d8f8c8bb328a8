"""A training scheme owns one step: the order of D and G updates and what G's loss sees.

``step(gan, next_real)`` takes the GAN and a function that returns the next real
batch, and returns a dict of floats. A scheme that needs more networks or
optimizers adds them in ``setup`` to ``gan.modules`` and ``gan.optimizers``, so
that checkpoints carry them without the scheme doing anything.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from torch import Tensor

if TYPE_CHECKING:
    from ..gan import GAN
    from ..registry import Spec


class Scheme:
    name: str = ""
    takes_noise: bool = True      # G maps noise to samples (False: pix2pix's G translates images)

    def validate(self, gan: "GAN") -> None:
        pass

    def setup(self, gan: "GAN") -> None:
        pass

    def check_optimizers(self, gan: "GAN") -> None:
        """Raise :class:`ConfigError` for optimizers the scheme cannot step with (``gan.optimizers`` is built)."""

    def net_spec(self, role: str, spec: "Spec") -> "Spec":
        """The net the builder makes by name for ``role`` ("generator" or "discriminator").

        A scheme that needs a particular kind of built-in net adapts the spec here (MAD-GAN
        asks D for k+1 outputs, EBGAN for an auto-encoder). Nets handed to :class:`GAN`
        directly do not pass through here; ``validate`` checks those.
        """
        return spec

    def step(self, gan: "GAN", next_real: Callable[[], Tensor]) -> dict[str, float]:  # pragma: no cover
        raise NotImplementedError

    def generate(self, gan: "GAN", z: Tensor) -> Tensor:
        """Samples for evaluation; schemes with several generators override this."""
        return gan.sampling_generator(z)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
