"""gantricks: GAN training tricks that keep training stable and free of mode collapse.

>>> import gantricks as gt
>>> gan = gt.GAN(generator=G, discriminator=D, z_dim=2, loss="hinge", tricks=["spectral-norm"])
>>> logs = gan.step(real)

Importing the package imports no torch: ``GAN``, ``train`` and the rest load when first used, and the
built-in components register themselves when a registry is first asked for a name
(:mod:`gantricks.registry`), so ``gantricks --help`` and ``gantricks list`` answer at once.
"""
import importlib
import sys
import types

from . import registry
from .errors import CheckpointError, ConfigError, GantricksError, NonFiniteError
from .registry import ALL as _ALL

__version__ = "0.1.0"

_LAZY = {"GAN": "gan", "TrainConfig": "config", "train": "train", "evaluate": "train", "open_run": "train"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        if name != "train":         # see _Package: the name `train` is the function, not the module
            globals()[name] = value
        return value
    try:        # a sub-package or module (gantricks.data, gantricks.nets, ...), as an eager import made them
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *registry.BUILTIN_MODULES})


class _Package(types.ModuleType):
    """``gantricks.train`` is the function ``train`` even once the module ``gantricks.train`` is imported
    (importing a sub-module binds it on its package; the eager package bound the function over it)."""

    @property
    def train(self):
        return importlib.import_module(f"{__name__}.train").train

    @train.setter
    def train(self, module) -> None:
        pass


sys.modules[__name__].__class__ = _Package


def _lister(kind: str):
    def list_kind() -> list[str]:
        return _ALL[kind].names()
    list_kind.__name__ = f"list_{kind}s"
    list_kind.__doc__ = f"Names of every registered {kind}."
    return list_kind


list_datasets, list_nets, list_losses, list_tricks, list_schemes, list_metrics, list_optimizers = (
    _lister(k) for k in ("dataset", "net", "loss", "trick", "scheme", "metric", "optimizer"))

__all__ = ["GAN", "TrainConfig", "train", "evaluate", "open_run", "GantricksError", "ConfigError",
           "CheckpointError", "NonFiniteError", "list_datasets", "list_nets", "list_losses", "list_tricks",
           "list_schemes", "list_metrics", "list_optimizers"]
