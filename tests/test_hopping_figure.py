"""benchmarks/hopping_figure.py lays out a bench run's sample scatters, a row per cell, every N-th evaluation."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_montage_rows_and_columns(tmp_path):
    import hopping_figure

    colours = {"baseline": (255, 0, 0), "unrolled": (0, 0, 255)}
    for cell, colour in colours.items():
        plots = tmp_path / "runs" / "collapse" / cell / "ring8" / "seed0" / "plots"
        plots.mkdir(parents=True)
        for step in range(1, 7):
            Image.new("RGB", (40, 20), colour).save(plots / f"samples-{step * 100:08d}.png")
    out = hopping_figure.montage(tmp_path, "collapse", ["baseline", "unrolled"], "ring8", 0, every=2, scale=0.5)
    assert out.size == (3 * 20, 2 * 10)                     # evaluations 2, 4, 6 of each; a row per cell
    assert out.getpixel((5, 5)) == colours["baseline"] and out.getpixel((45, 15)) == colours["unrolled"]
    with pytest.raises(SystemExit, match="no sample plots for ema/ring8/seed0"):
        hopping_figure.montage(tmp_path, "collapse", ["ema"], "ring8", 0)
