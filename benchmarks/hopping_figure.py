"""One figure of a bench run's sample scatters across its evaluations, a row per cell: mode hopping shows
as the samples moving from mode to mode, a cure as them spreading over the modes.

    python benchmarks/hopping_figure.py runs/bench-collapse --protocol collapse --cells baseline unrolled \
        --dataset ring8 --seed 0 --out benchmarks/results/collapse-hopping-ring8.png

Reads ``RUN/runs/PROTOCOL/CELL/DATASET/seedN/plots/samples-*.png`` (the collapse protocol keeps one per
evaluation) and lays them out side by side, every ``--every``-th evaluation.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image


def sample_plots(run: Path) -> list[Path]:
    """A run folder's sample plots (``plots/samples-STEP.png``), in the order of their steps."""
    return sorted((run / "plots").glob("samples-*.png"))


def montage(bench: Path, protocol: str, cells: list[str], dataset: str, seed: int, every: int = 1,
            scale: float = 0.5) -> Image.Image:
    rows = []
    for cell in cells:
        plots = sample_plots(bench / "runs" / protocol / cell / dataset / f"seed{seed}")
        if not plots:
            raise SystemExit(f"no sample plots for {cell}/{dataset}/seed{seed} under {bench}")
        rows.append([Image.open(p).convert("RGB") for p in plots[every - 1::every]])
    w, h = rows[0][0].size
    w, h = int(w * scale), int(h * scale)
    out = Image.new("RGB", (w * max(len(r) for r in rows), h * len(rows)), "white")
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            out.paste(im.resize((w, h)), (j * w, i * h))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bench", type=Path, help="the bench's --out folder")
    p.add_argument("--protocol", default="collapse")
    p.add_argument("--cells", nargs="+", default=["baseline", "unrolled"])
    p.add_argument("--dataset", default="ring8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=2, help="every N-th evaluation (default 2)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    montage(args.bench, args.protocol, args.cells, args.dataset, args.seed, args.every).save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
