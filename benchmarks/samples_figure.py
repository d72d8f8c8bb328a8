"""The last sample grid of each run side by side, each under its label: what a mode count alone hides (a G that
learnt a few digit triples and one that makes noise can both cover few modes).

    python benchmarks/samples_figure.py runs/bench-smnist-d4/runs/dcgan-small-d4/{baseline,madgan}/stacked-mnist/seed0 \\
        --labels baseline MAD-GAN --out benchmarks/results/stacked-mnist-d4-samples.png

Reads each run folder's last ``plots/samples-*.png`` (the one of the highest step) and lays them out in a row,
each at the first one's size. Bad input (a run without sample plots, a label count that differs, an image that
cannot be read or written) is one line and exit 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hopping_figure import sample_plots
from PIL import Image, ImageDraw, UnidentifiedImageError

LABEL_H = 16


class BadInput(Exception):
    """One line, exit 2 (from :func:`main`)."""


def row(runs: list[Path], labels: list[str], scale: float = 0.5) -> Image.Image:
    if len(labels) != len(runs):
        raise BadInput(f"{len(runs)} runs but {len(labels)} labels; give one label a run")
    images = []
    for run in runs:
        plots = sample_plots(run)
        if not plots:
            raise BadInput(f"no sample plots in {run / 'plots'}")
        try:
            images.append(Image.open(plots[-1]).convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            raise BadInput(f"cannot read {plots[-1]}: {err}") from None
    w, h = (max(1, round(n * scale)) for n in images[0].size)
    out = Image.new("RGB", (w * len(images), h + LABEL_H), "white")
    draw = ImageDraw.Draw(out)
    for i, (im, label) in enumerate(zip(images, labels)):
        out.paste(im.resize((w, h)), (i * w, LABEL_H))
        draw.text((i * w + 4, 2), label, fill="black")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders (each with plots/samples-*.png)")
    p.add_argument("--labels", nargs="+", required=True, help="one label a run, in the same order")
    p.add_argument("--scale", type=float, default=0.5, help="each grid's size against its plot's (default 0.5)")
    p.add_argument("--out", type=Path, required=True, help="the figure (.png)")
    args = p.parse_args(argv)
    try:
        if not 0 < args.scale <= 4:
            raise BadInput(f"--scale must be in (0, 4], got {args.scale}")
        figure = row(args.runs, args.labels, args.scale)
        try:
            figure.save(args.out, optimize=True)
        except (OSError, ValueError) as err:
            raise BadInput(f"cannot write {args.out}: {err}") from None
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
