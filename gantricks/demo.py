"""``make demo``: a quick trick matrix on ring8 — a table and scatter plots under runs/demo/."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .bench import cells, run_bench
from .errors import ConfigError

DEMO_CELLS = ("baseline", "pacgan", "madgan-decay", "recommended")
DEMO_STEPS = 5000
DEMO_SEEDS = 2


def run_demo(out: Path, overwrite: bool = False, steps: int | None = None) -> int:
    """Run the demo cells on ring8 (2 seeds, both cores) and print the table."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a demo folder; refusing to replace it (choose another --out)")
    if out.exists() and any(out.iterdir()):
        if not (out / "results.jsonl").exists():      # only a demo folder is ever replaced
            raise ConfigError(f"{out} exists and is not a demo folder; choose another --out")
        if overwrite:
            shutil.rmtree(out)
    available = [c for c in DEMO_CELLS if c in cells()]
    results = run_bench("ring8", DEMO_SEEDS, steps or DEMO_STEPS, out, workers=min(2, os.cpu_count() or 1),
                        only=available, protocol="fast")
    print((out / "report.md").read_text())
    plots = sorted(out.glob("runs/*/*/ring8/seed*/plots/samples-*.png"))
    finals = {}
    for p in plots:
        finals[p.parent] = p           # the last scatter of each run
    print("scatter plots:")
    for p in finals.values():
        print(f"  {p}")
    if (out / "report.html").exists():
        print(f"report: {out / 'report.html'}")
    return 0 if all(not r.get("error") for r in results) else 1
