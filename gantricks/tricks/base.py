"""The shape every trick shares: a few hooks around one training step, all no-ops by default.

A trick overrides only the hooks it needs and says which ones in ``touches``:

========================  ====================================================
hook                      what it may change
========================  ====================================================
``setup(gan)``            D or G architecture, once, when the GAN is built
``d_inputs(...)``         the real and fake batches before D sees them
``targets(...)``          the labels the D loss compares against
``d_terms(ctx)``          extra terms of D's loss (penalties)
``g_terms(ctx)``          extra terms of G's loss, or a replacement of it
``after_step(gan)``       state kept beside the models (EMA, buffers)
========================  ====================================================

``validate(gan)`` runs when the GAN is built and raises :class:`ConfigError` for
a combination that cannot work, so it fails at step 0, not at step 500.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from torch import Tensor

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..gan import GAN

D_ARCH, G_ARCH, D_INPUTS, TARGETS, D_LOSS, G_LOSS, AFTER_STEP = (
    "D architecture", "G architecture", "D inputs", "targets", "D loss", "G loss", "after step")


@dataclass
class StepContext:
    """What a loss-term hook may read. ``D`` is the discriminator as a callable: under
    the unrolled scheme it is a functional copy with unrolled parameters."""

    gan: "GAN"
    D: Callable[[Tensor], Tensor]
    real: Tensor                        # the real batch as drawn from the data
    fake: Tensor                        # G's batch (with grad in the G phase)
    real_in: Tensor | None = None       # what D saw after the D-input hooks
    fake_in: Tensor | None = None
    real_logits: Tensor | None = None
    fake_logits: Tensor | None = None
    phase: str = "D"                    # "D" or "G"
    extra: dict = field(default_factory=dict)
    logs: dict = field(default_factory=dict)   # values a hook wants logged, not added to the loss

    @property
    def step(self) -> int:
        return self.gan.step_count


class Trick:
    """Base class. Subclasses set ``name``, ``touches`` and override hooks."""

    name: str = ""
    touches: tuple[str, ...] = ()
    needs_targets: bool = False          # refused with losses that have no labels
    order: int = 50                      # order of the D-input and target hooks (low runs first)
    exclusive: tuple[str, ...] = ()      # what it sets outright (e.g. "real targets"): one trick each

    def validate(self, gan: "GAN") -> None:
        if self.needs_targets and not gan.loss.uses_targets:
            raise ConfigError(f"trick {self.name!r} changes D's labels, but loss {gan.loss.name!r} has none; "
                              f"use minimax, nonsaturating or least-squares")

    def setup(self, gan: "GAN") -> None:
        pass

    def d_inputs(self, real: Tensor | None, fake: Tensor, gan: "GAN", phase: str) -> tuple[Tensor | None, Tensor]:
        return real, fake

    def targets(self, real_t: Tensor, fake_t: Tensor, gan: "GAN") -> tuple[Tensor, Tensor]:
        return real_t, fake_t

    def d_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        return {}

    def g_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        return {}

    replaces_g_loss: bool = False        # g_terms replace the adversarial G loss

    def after_step(self, gan: "GAN") -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


def refuse_conflicts(tricks: "list[Trick]") -> None:
    """:class:`ConfigError` when two tricks both replace G's loss or both set the same thing."""
    for i, a in enumerate(tricks):
        for b in tricks[i + 1:]:
            shared = sorted(set(a.exclusive) & set(b.exclusive))
            if a.replaces_g_loss and b.replaces_g_loss:
                shared.append("the generator loss")
            if shared:
                raise ConfigError(f"tricks {a.name!r} and {b.name!r} both replace {shared[0]}; use one of them")
