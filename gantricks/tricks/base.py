"""The shape every trick shares: a few hooks around one training step, all no-ops by default.

A trick overrides only the hooks it needs; ``touches`` says what it changes:

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

``touches`` is derived from the hooks a class overrides (:func:`checked_touches`), at
registration and for a trick handed to the GAN: the schemes' safety checks read it, so it
cannot be a free string that a typo turns off. Derived rather than only checked, because the
overridden hooks *are* the truth and a declaration could only repeat or contradict them; one that
contradicts them (an entry with no hook behind it, e.g. a misspelt ``d_term``) or names no known
entry is refused. D/G architecture cannot be derived (``setup`` also builds EMA copies): declared.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from torch import Tensor

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..gan import GAN

D_ARCH, G_ARCH, D_INPUTS, TARGETS, D_LOSS, G_LOSS, AFTER_STEP = (
    "D architecture", "G architecture", "D inputs", "targets", "D loss", "G loss", "after step")
TOUCHES = (D_ARCH, G_ARCH, D_INPUTS, TARGETS, D_LOSS, G_LOSS, AFTER_STEP)     # every valid entry
HOOK_TOUCHES = {"d_inputs": D_INPUTS, "targets": TARGETS, "d_terms": D_LOSS, "g_terms": G_LOSS,
                "after_step": AFTER_STEP}     # a hook and what overriding it touches


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
    """Base class. Subclasses override hooks; registering sets ``name`` and adds to ``touches`` what
    the overridden hooks touch (:func:`checked_touches`); only D/G architecture is declared by hand."""

    name: str = ""
    touches: tuple[str, ...] = ()
    needs_targets: bool = False          # refused with losses that have no labels
    order: int = 50                      # order of the D-input and target hooks (low runs first)
    exclusive: tuple[str, ...] = ()      # what it sets outright (e.g. "real targets"): one trick each
    needs_images: bool = False           # transforms images (C, H, W): refused on other samples

    def validate(self, gan: "GAN") -> None:
        if self.needs_targets and not gan.loss.uses_targets:
            raise ConfigError(f"trick {self.name!r} changes D's labels, but loss {gan.loss.name!r} has none; "
                              f"use minimax, nonsaturating or least-squares")
        if self.needs_images and gan.data_shape is not None and len(gan.data_shape) != 3:
            raise ConfigError(f"trick {self.name!r} transforms images (channels, height, width); the data's samples "
                              f"have shape {gan.data_shape}")

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


def checked_touches(cls: type, declared: Sequence[str], name: str) -> tuple[str, ...]:
    """``declared`` plus what the hooks ``cls`` overrides touch (:data:`HOOK_TOUCHES`), checked.

    Refused with :class:`ConfigError`: an entry that is none of :data:`TOUCHES` (a typo), an entry
    of a hook the class does not override (a misspelt method: ``d_term`` for ``d_terms``), and
    ``replaces_g_loss`` without ``g_terms`` (G would have no loss). A hook that is overridden but not
    declared is added. The architecture entries (D/G architecture) cannot be derived — ``setup``
    may build an EMA copy as well as change D — so they stay declared.
    """
    if isinstance(declared, str):
        raise ConfigError(f"trick {name!r}: touches must be a tuple of strings, got the string {declared!r}")
    for entry in declared:
        if entry not in TOUCHES:
            raise ConfigError(f"trick {name!r} declares touches {entry!r}, which is none of: {', '.join(TOUCHES)}")
    overridden = [hook for hook in HOOK_TOUCHES if getattr(cls, hook) is not getattr(Trick, hook)]
    for hook, entry in HOOK_TOUCHES.items():
        if entry in declared and hook not in overridden:
            raise ConfigError(f"trick {name!r} declares touches {entry!r} but does not define {hook}(); "
                              f"is the method misspelt?")
    if getattr(cls, "replaces_g_loss", False) and "g_terms" not in overridden:
        raise ConfigError(f"trick {name!r} sets replaces_g_loss but defines no g_terms(): G would have no loss")
    return tuple(dict.fromkeys([*declared, *(HOOK_TOUCHES[h] for h in overridden)]))


def prepare_trick(name: str, factory: Any, touches: str) -> str:
    """What registering a trick does (``registry.tricks.register``, :func:`register_trick`): a :class:`Trick`
    class gets its ``name`` and its :func:`checked_touches`; returns them as the registry's line."""
    if not (inspect.isclass(factory) and issubclass(factory, Trick)):
        return touches          # a factory function: its tricks are checked when a GAN is built
    extra = tuple(t.strip() for t in touches.split(",") if t.strip())
    declared = factory.touches if isinstance(factory.touches, str) else (*factory.touches, *extra)
    factory.touches = checked_touches(factory, declared, name)
    factory.name = name
    return ", ".join(factory.touches)


def check_trick(trick: Trick) -> None:
    """A trick handed to the GAN: a :class:`Trick` with a name, its ``touches`` checked (and completed)."""
    if not isinstance(trick, Trick):
        raise ConfigError(f"a trick must be a gantricks.tricks.Trick (or a registered name), got "
                          f"{type(trick).__name__}")
    if not trick.name:
        raise ConfigError(f"trick {type(trick).__name__} has no name; set `name` or register it")
    trick.touches = checked_touches(type(trick), trick.touches, trick.name)


def refuse_conflicts(tricks: "list[Trick]") -> None:
    """:class:`ConfigError` when two tricks both replace G's loss or both set the same thing."""
    for i, a in enumerate(tricks):
        for b in tricks[i + 1:]:
            shared = sorted(set(a.exclusive) & set(b.exclusive))
            if a.replaces_g_loss and b.replaces_g_loss:
                shared.append("the generator loss")
            if shared:
                raise ConfigError(f"tricks {a.name!r} and {b.name!r} both replace {shared[0]}; use one of them")
