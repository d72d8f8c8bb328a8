"""The last sample grid of each run side by side, each under its label: what a mode count alone hides (a G that
learnt a few digit triples and one that makes noise can both cover few modes).

    python benchmarks/samples_figure.py runs/bench-smnist-d4/runs/dcgan-small-d4/{baseline,madgan}/stacked-mnist/seed0 \
        --labels baseline MAD-GAN --out benchmarks/results/stacked-mnist-d4-samples.png

Reads each run folder's ``plots/samples-*.png`` (the one of the highest step) and lays them out in a row.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

LABEL_H = 16


def last_samples(run: Path) -> Path:
    plots = sorted((run / "plots").glob("samples-*.png"))
    if not plots:
        raise SystemExit(f"no sample plots in {run / 'plots'}")
    return plots[-1]


def row(runs: list[Path], labels: list[str], scale: float = 0.5) -> Image.Image:
    if len(labels) != len(runs):
        raise SystemExit(f"{len(runs)} runs but {len(labels)} labels; give one label a run")
    images = [Image.open(last_samples(r)).convert("RGB") for r in runs]
    w, h = images[0].size
    w, h = int(w * scale), int(h * scale)
    out = Image.new("RGB", (w * len(images), h + LABEL_H), "white")
    draw = ImageDraw.Draw(out)
    for i, (im, label) in enumerate(zip(images, labels)):
        out.paste(im.resize((w, h)), (i * w, LABEL_H))
        draw.text((i * w + 4, 2), label, fill="black")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders (each with plots/samples-*.png)")
    p.add_argument("--labels", nargs="+", required=True, help="one label a run, in the same order")
    p.add_argument("--scale", type=float, default=0.5)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    row(args.runs, args.labels, args.scale).save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    sys.exit(main())
