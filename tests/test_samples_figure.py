"""benchmarks/samples_figure.py lays out the last sample grid of each run in a row, under its label."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _runs(tmp_path):
    runs = []
    for name, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        plots = tmp_path / name / "plots"
        plots.mkdir(parents=True)
        Image.new("RGB", (40, 40), (0, 255, 0)).save(plots / "samples-00000500.png")     # an earlier grid
        Image.new("RGB", (40, 40), colour).save(plots / "samples-00002000.png")
        runs.append(tmp_path / name)
    return runs


def test_the_last_grid_of_each_run_in_a_row_under_its_label(tmp_path):
    import samples_figure

    out = samples_figure.row(_runs(tmp_path), ["a", "b"], scale=0.5)
    top = samples_figure.LABEL_H
    assert out.size == (2 * 20, 20 + top)
    assert out.getpixel((10, top + 10)) == (255, 0, 0) and out.getpixel((30, top + 10)) == (0, 0, 255)
    label = [out.getpixel((x, y)) for x in range(4, 12) for y in range(2, top - 2)]
    assert any(p != (255, 255, 255) for p in label)                            # the label is drawn


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    import samples_figure

    runs = [str(r) for r in _runs(tmp_path)]
    (tmp_path / "bad" / "plots").mkdir(parents=True)
    (tmp_path / "bad" / "plots" / "samples-00000001.png").write_bytes(b"not a png")
    for args, words in ((runs + ["--labels", "a"], "2 runs but 1 labels"),
                        ([str(tmp_path)] + ["--labels", "x"], "no sample plots in"),
                        ([str(tmp_path / "bad"), "--labels", "x"], "cannot read"),
                        (runs + ["--labels", "a", "b", "--scale", "0"], "--scale must be in (0, 4]"),
                        (runs + ["--labels", "a", "b", "--out", str(tmp_path / "none" / "f.png")], "cannot write")):
        out = [] if "--out" in args else ["--out", str(tmp_path / "f.png")]
        assert samples_figure.main(args + out) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert samples_figure.main(runs + ["--labels", "a", "b", "--out", str(tmp_path / "f.png")]) == 0
    assert Image.open(tmp_path / "f.png").size == (40, 36)
