"""What the built-in tricks share: registration with ``touches``, option checks, weight layers."""
from __future__ import annotations

from typing import Callable, TypeVar

from torch import nn

from ..errors import ConfigError
from ..registry import tricks
from .base import Trick, prepare_trick

T = TypeVar("T", bound=type[Trick])
tricks.prepare = prepare_trick      # every registered Trick class: its name set, its touches derived and checked


def register_trick(name: str, *, paper: str, summary: str) -> Callable[[T], T]:
    """Register a :class:`Trick` subclass under ``name``: its ``name`` is set and its ``touches``
    derived from the hooks it overrides and checked (:func:`~gantricks.tricks.base.checked_touches`)."""
    return tricks.register(name, paper=paper, summary=summary)


def require(ok: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def weight_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every Linear, Conv1d/2d/3d and ConvTranspose1d/2d/3d inside ``module``, in registration order."""
    kinds = (nn.Linear, nn.modules.conv._ConvNd)
    return [(name, m) for name, m in module.named_modules() if isinstance(m, kinds)]
