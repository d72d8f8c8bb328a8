"""Named recipes: combinations of tricks, schemes and settings, selected with ``--recipe``.

Each recipe is a dict of config overrides. ``recommended`` is the one the README recommends;
BENCHMARKS.md has the measurements behind it.
"""
from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {}
