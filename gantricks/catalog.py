"""What ``gantricks list`` prints, readable without importing torch.

The registries are the one source: :func:`from_registries` reads them (importing every component,
and torch with them) into plain data, and ``catalog.json`` beside this file is that data, written by
``python -m gantricks.catalog``. ``gantricks list`` reads the file when no installed package adds
components through entry points (those must be imported to be listed), so it answers in a tenth of a
second instead of the seconds torch's import takes. ``tests/test_catalog.py`` checks that the file
equals the registries, so it cannot drift: a new or changed component fails that test until the file
is written again.
"""
from __future__ import annotations

import importlib.metadata
import inspect
import json
import typing
from pathlib import Path
from typing import Any

PATH = Path(__file__).with_name("catalog.json")
BUILDER_ARGS = {"role", "data_shape", "z_dim", "seed"}     # passed by gantricks, not set by the user


def from_registries() -> dict[str, list[dict[str, Any]]]:
    """Every registered component by kind, in listing order: name, summary, paper, touches, and the
    options a user sets as ``[key, type, default]`` (``default`` as ``list NAME`` prints it)."""
    from .registry import ALL

    return {kind: [{"name": e.name, "summary": e.summary, "paper": e.paper, "touches": e.touches,
                    "options": [[key, type_name(p.annotation),
                                 "required" if p.default is p.empty else f"default {p.default!r}"]
                                for key, p in e.options().items() if key not in BUILDER_ARGS]}
                   for e in registry]
            for kind, registry in ALL.items()}


def load() -> dict[str, list[dict[str, Any]]] | None:
    """The written catalog, or None where it cannot stand for the registries: no file, or an installed
    package adds components (entry points), which only importing them can list."""
    from .plugins import GROUP_OF_KIND

    if not PATH.exists():
        return None
    if set(GROUP_OF_KIND.values()) & set(importlib.metadata.entry_points().groups):
        return None
    return json.loads(PATH.read_text())


def type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "any"
    if typing.get_origin(annotation) is typing.Literal:
        return "|".join(map(str, typing.get_args(annotation)))
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def write(path: Path = PATH) -> None:
    path.write_text(json.dumps(from_registries(), indent=1) + "\n")


if __name__ == "__main__":
    write()
    print(f"wrote {PATH}")
