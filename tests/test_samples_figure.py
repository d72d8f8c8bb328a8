"""benchmarks/samples_figure.py lays out the last sample grid of each run in a row, under its label."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_the_last_grid_of_each_run_in_a_row(tmp_path):
    import samples_figure

    runs = []
    for name, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        plots = tmp_path / name / "plots"
        plots.mkdir(parents=True)
        Image.new("RGB", (40, 40), (0, 255, 0)).save(plots / "samples-00000500.png")     # an earlier grid
        Image.new("RGB", (40, 40), colour).save(plots / "samples-00002000.png")
        runs.append(tmp_path / name)
    out = samples_figure.row(runs, ["a", "b"], scale=0.5)
    assert out.size == (2 * 20, 20 + samples_figure.LABEL_H)
    top = samples_figure.LABEL_H
    assert out.getpixel((10, top + 10)) == (255, 0, 0) and out.getpixel((30, top + 10)) == (0, 0, 255)
    with pytest.raises(SystemExit, match="2 runs but 1 labels"):
        samples_figure.row(runs, ["a"])
    with pytest.raises(SystemExit, match="no sample plots in"):
        samples_figure.row([tmp_path], ["x"])
