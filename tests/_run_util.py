"""Helpers shared by the tests that compare runs."""
from __future__ import annotations

import json
from pathlib import Path


def records(run: Path) -> list[dict]:
    """A run's metrics.jsonl records without their clock readings (which differ between equal runs)."""
    out = []
    for line in (Path(run) / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        r.pop("wall_s", None), r.pop("cpu_s", None)
        out.append(r)
    return out
