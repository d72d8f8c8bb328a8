"""Components from a user's package: Python entry points per kind, and modules named by ``--import``.

A package adds its own tricks, schemes, nets, datasets, losses, metrics or optimizers in two ways:

* **entry points**, found whenever a name is not (yet) known and by ``gantricks list``: in its
  ``pyproject.toml``::

      [project.entry-points."gantricks.tricks"]
      my-trick = "mypkg.tricks:MyTrick"      # an object: registered under the entry point's name
      more = "mypkg.more_tricks"             # a module: it registers its components on import

  (one group per kind: ``gantricks.tricks``, ``gantricks.schemes``, ``gantricks.nets``,
  ``gantricks.datasets``, ``gantricks.losses``, ``gantricks.metrics``, ``gantricks.optimizers``);
* **modules** that register on import (``@gantricks.registry.tricks.register(...)``), named by
  ``gantricks train --import MODULE`` (repeatable) or the config key ``imports``. They are saved in
  the run's ``config.toml``, so ``eval``, ``sample``, ``diagnose`` and ``--resume`` import them too.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
import warnings
from typing import Iterable

from .errors import ConfigError

GROUP_OF_KIND = {"dataset": "gantricks.datasets", "net": "gantricks.nets", "loss": "gantricks.losses",
                 "trick": "gantricks.tricks", "scheme": "gantricks.schemes", "metric": "gantricks.metrics",
                 "optimizer": "gantricks.optimizers"}
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_loaded = False


def import_modules(names: Iterable[str]) -> None:
    """Import each module of ``names`` (they register their components); :class:`ConfigError` naming one
    that cannot be imported, and why."""
    for name in names:
        if not isinstance(name, str) or not _MODULE_NAME.match(name):
            raise ConfigError(f"imports: {name!r} is not a Python module name (e.g. mypkg.gan_tricks)")
        try:
            importlib.import_module(name)
        except ConfigError:
            raise
        except ModuleNotFoundError as err:
            raise ConfigError(f"cannot import module {name!r} (--import / imports): {err}; is it installed or on "
                              f"PYTHONPATH?") from None
        except Exception as err:     # the user's module raised on import: name it, one line
            raise ConfigError(f"importing module {name!r} (--import / imports) failed: "
                              f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                              ) from None


def load_entry_points() -> None:
    """Load every installed package's gantricks entry points, once. An object is registered under the
    entry point's name (unless that name is already its own); a module registers itself when imported.
    One that fails to load is skipped with a warning naming it."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from .registry import ALL

    for kind, group in GROUP_OF_KIND.items():
        registry = ALL[kind]
        for ep in importlib.metadata.entry_points(group=group):
            try:
                obj = ep.load()
                if not inspect.ismodule(obj) and (ep.name not in registry or registry.get(ep.name).factory is not obj):
                    doc = (inspect.getdoc(obj) or "").strip().splitlines()
                    registry.register(ep.name, summary=doc[0] if doc else f"from {ep.value}")(obj)
            except Exception as err:
                warnings.warn(f"gantricks: the {kind} plugin {ep.name!r} ({ep.value}, group {group}) did not "
                              f"load: {type(err).__name__}: {err}", stacklevel=2)
