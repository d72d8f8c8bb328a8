"""Little data (BENCHMARKS.md §12): the dcgan-small protocol on the first N digits of mnist5k (class-balanced,
500 more held out), baseline against augmentation tricks, several seeds; FID in the digit classifier's
features at every evaluation, D's outputs on training / held-out / fake images, the monitor's flags, ADA's p.

    python benchmarks/little_data.py --n 500 --cells baseline,diffaugment,ada --seeds 3 --steps 3000 \\
        --eval-every 300 --out benchmarks/results/little-data-500.jsonl [--workers 2]

One JSON line per run is appended to ``--out``; runs already there (same n, cell, seed, steps) are skipped,
so an interrupted benchmark continues where it stopped. Each run trains on one CPU thread.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# the augmentation and regularizer cells; ada's speed is scaled to these short runs (see §12)
CELLS = {
    "baseline": (),
    "diffaugment": ("diffaugment:policy=color,translation,cutout",),
    "ada": ("ada:target=0.6,kimg=100",),
    "cr": ("cr",),
    "zcr": ("zcr",),
    "lecam": ("lecam:weight=0.3",),
}
PROTOCOL = dict(generator="dcgan:width=32", discriminator="dcgan:width=32", batch_size=64, lr_g=2e-4, lr_d=2e-4,
                beta1=0.5, beta2=0.999, z_dim=100, eval_samples=1000, log_every=50, checkpoint_every=0,
                sample_plots="last", progress=False, threads=1)
EVAL_KEYS = ("step", "fid", "d_seen", "d_heldout", "d_fake_eval", "d_overfit", "rt_seen", "rt_heldout", "cpu_s")


def run_one(job: dict) -> dict:
    import torch

    from gantricks.config import TrainConfig
    from gantricks.train import RunDir, train

    torch.set_num_threads(1)
    config = TrainConfig(data=f"mnist5k:n={job['n']}", tricks=CELLS[job["cell"]], seed=job["seed"],
                         steps=job["steps"], eval_every=job["eval_every"], **PROTOCOL)
    out = Path(job["runs"]) / f"n{job['n']}-{job['cell']}-s{job['seed']}"
    cpu0, t0 = time.process_time(), time.perf_counter()
    error = None
    try:
        train(config, out, overwrite=True)
    except Exception as err:      # a run that fails is a result too
        error = f"{type(err).__name__}: {err}"
    records = RunDir(out).records()
    evals = [{k: r.get(k) for k in EVAL_KEYS} for r in records if r.get("kind") == "eval"]
    return {"n": job["n"], "cell": job["cell"], "tricks": list(CELLS[job["cell"]]), "seed": job["seed"],
            "steps": job["steps"], "eval_every": job["eval_every"], "final_fid": evals[-1]["fid"] if evals else None,
            "evals": evals, "flags": [{"step": r["step"], "flag": r["flag"]} for r in records if r.get("kind") == "flag"],
            "ada_p": [[r["step"], round(r["ada_p"], 4)] for r in records if r.get("kind") == "train" and "ada_p" in r],
            "cpu_s": round(time.process_time() - cpu0, 1), "wall_s": round(time.perf_counter() - t0, 1),
            "error": error, "run": str(out), "device": "cpu", "protocol": "dcgan-small, eval_samples 1000"}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[500], help="training digits (each a run set)")
    p.add_argument("--cells", default="baseline,diffaugment,ada", help=f"comma list of {', '.join(CELLS)}")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--eval-every", type=int, default=300)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "little-data")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    cells = [c for c in args.cells.split(",") if c]
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        sys.exit(f"little_data.py: unknown cell {unknown[0]!r}; choose from {', '.join(CELLS)}")
    done = set()
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["n"], r["cell"], r["seed"], r["steps"]))
    jobs = [dict(n=n, cell=c, seed=s, steps=args.steps, eval_every=args.eval_every, runs=str(args.runs))
            for n in args.n for s in range(args.seeds) for c in cells if (n, c, s, args.steps) not in done]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.workers) as pool:
        for result in pool.map(run_one, jobs):
            with args.out.open("a") as f:
                f.write(json.dumps(result) + "\n")
            print(f"n={result['n']} {result['cell']} seed {result['seed']}: FID {result['final_fid']}, "
                  f"flags {[f['flag'] + '@' + str(f['step']) for f in result['flags']]}, {result['cpu_s']} CPU s",
                  flush=True)


if __name__ == "__main__":
    main()
