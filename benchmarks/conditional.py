"""Class-conditional GANs on mnist5k (BENCHMARKS.md §11): projection, cGAN (concat), AC-GAN and the
unconditional baseline, DCGAN nets of width 32 (the §6 ``dcgan-small`` nets), a few seeds each.

    python benchmarks/conditional.py --steps 3000 --seeds 0,1,2 --cells projection,concat,acgan,baseline \
        --out runs/conditional --results benchmarks/results/conditional-mnist5k-3000.jsonl

One line per run in ``--results`` (the final evaluation: class accuracy, intra-FID, within-class
diversity, FID, CPU seconds); a run already there is skipped, so the command resumes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from gantricks import TrainConfig, train

CELLS = {            # conditional setting of each cell
    "projection": "projection:g=embed",
    "projection-cbn": "projection:g=cbn",      # G by conditional batch norm, as Miyato & Koyama's
    "concat": "concat:g=embed",
    "acgan": "acgan:g=embed,weight=1.0",
    "baseline": "none",
}


def config(cell: str, seed: int, steps: int, data: str = "mnist5k") -> TrainConfig:
    """mnist5k: the §6 DCGAN nets (width 32), Adam 2e-4 β1 0.5, batch 64, z 100; a mixture: the fast
    protocol's MLPs (3x128), Adam 3e-4 β1 0.5, batch 100, z 2 (§3)."""
    if data == "mnist5k":
        nets = dict(generator="dcgan:width=32", discriminator="dcgan:width=32", z_dim=100, batch_size=64,
                    lr_g=2e-4, lr_d=2e-4)
    else:
        nets = dict(generator="mlp:width=128,depth=3", discriminator="mlp:width=128,depth=3,maxout=1", z_dim=2,
                    batch_size=100, lr_g=3e-4, lr_d=3e-4)
    return TrainConfig(data=data, **nets, steps=steps, beta1=0.5, beta2=0.999, seed=seed,
                       eval_every=0, eval_samples=2500, checkpoint_every=0, keep_checkpoints=1,
                       sample_plots="last", progress=False, threads=1, conditional=CELLS[cell])


COLUMNS = ("class_accuracy", "intra_fid", "within_class_diversity", "fid", "precision", "recall", "own_mode_pct",
           "modes_covered", "high_quality_pct", "run_cpu_s")


def table(results: Path) -> str:
    """One row per cell: mean ± std over its seeds of each column (class accuracy in %)."""
    import statistics

    rows = [json.loads(line) for line in results.read_text().splitlines()]
    columns = [c for c in COLUMNS if any(isinstance(r.get(c), (int, float)) for r in rows)]
    cells = list(dict.fromkeys((r["data"], r["cell"]) for r in rows))
    out = ["| data | cell | conditional | " + " | ".join(columns) + " | seeds | per seed (class accuracy %) |",
           "|---" * (len(columns) + 5) + "|"]
    for data, cell in cells:
        runs = [r for r in rows if r["cell"] == cell and r["data"] == data]
        parts = []
        for key in columns:
            values = [r[key] * (100 if key == "class_accuracy" else 1) for r in runs
                      if isinstance(r.get(key), (int, float))]
            if not values:
                parts.append("—")
            elif len(values) == 1:
                parts.append(f"{values[0]:.3g}")
            else:
                parts.append(f"{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g}")
        seeds = ", ".join(f"s{r['seed']}: {100 * r['class_accuracy']:.1f}" for r in runs if "class_accuracy" in r)
        out.append(f"| {data} | {cell} | `{runs[0]['conditional']}` | " + " | ".join(parts) + f" | {len(runs)} | {seeds or '—'} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--cells", default="projection,concat,acgan,baseline")
    p.add_argument("--data", default="mnist5k", help="mnist5k, or a mixture (ring8, grid25)")
    p.add_argument("--out", default="runs/conditional")
    p.add_argument("--results", default="benchmarks/results/conditional-mnist5k-3000.jsonl")
    p.add_argument("--table", action="store_true", help="print the Markdown table of --results and stop")
    args = p.parse_args(argv)
    if args.table:
        print(table(Path(args.results)))
        return 0
    torch.set_num_threads(1)
    results = Path(args.results)
    done = set()
    if results.exists():
        done = {(r["cell"], r["seed"], r["steps"], r["data"]) for r in map(json.loads, results.read_text().splitlines())}
    seeds = [int(s) for s in args.seeds.split(",")]
    for seed in seeds:
        for cell in args.cells.split(","):
            if (cell, seed, args.steps, args.data) in done:
                continue
            run = Path(args.out) / f"{args.data}-{cell}-s{seed}-{args.steps}"
            cfg = config(cell, seed, args.steps, args.data)
            t0, c0 = time.perf_counter(), time.process_time()
            final = train(cfg, run, overwrite=True)
            line = {"cell": cell, "conditional": cfg.conditional, "seed": seed, "steps": args.steps,
                    "data": cfg.data, "nets": cfg.generator, "batch_size": cfg.batch_size, "z_dim": cfg.z_dim,
                    **{k: v for k, v in final.items() if k != "step"},
                    "run_cpu_s": round(time.process_time() - c0, 1), "run_wall_s": round(time.perf_counter() - t0, 1),
                    "device": "cpu", "run": str(run)}
            with results.open("a") as f:
                f.write(json.dumps(line) + "\n")
            print(json.dumps({k: line.get(k) for k in ("cell", "seed", "class_accuracy", "intra_fid",
                                                        "within_class_diversity", "fid", "run_cpu_s")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
