"""Little data (BENCHMARKS.md §12): the dcgan-small protocol on the first N digits of mnist5k (class-balanced,
500 more held out), baseline against augmentation tricks, several seeds; FID in the digit classifier's
features at every evaluation, D's outputs on training / held-out / fake images, the monitor's flags, ADA's p.

    python benchmarks/little_data.py --n 500 --cells baseline,diffaugment,ada --seeds 3 --steps 3000 \\
        --eval-every 300 --out benchmarks/results/little-data-500.jsonl [--workers 2]

One JSON line per run is appended to ``--out``; runs already there (same n, cell, seed, steps) are skipped,
so an interrupted benchmark continues where it stopped. Each run trains on one CPU thread.
``--report FILES`` prints the tables of §12 from result files, the overfitting flags replayed on the recorded
evaluations with the monitor as it is now (``Monitor.judge_eval``).
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


def replayed_flags(evals: list[dict]) -> list[int]:
    """The steps at which today's monitor raises discriminator-overfits on a run's recorded evaluations
    (``Monitor.judge_eval``, the rule ``gantricks train`` applies at each evaluation)."""
    from gantricks.monitor import Monitor

    monitor = Monitor()
    return [f.step for e in evals for f in monitor.judge_eval(e["step"], dict(e)) if f.name == "discriminator-overfits"]


def mean_se(values: list[float]) -> str:
    if not values:
        return "—"
    m = sum(values) / len(values)
    if len(values) < 2:
        return f"{m:.1f} (1 seed)"
    se = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5 / len(values) ** 0.5
    return f"{m:.1f} ± {se:.1f}"


def report(paths: list[Path]) -> str:
    """Markdown tables of the runs in ``paths``: FID against steps (mean ± standard error over seeds), the share
    of the overfitting measure, the flags replayed with today's monitor, ADA's p."""
    runs = [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.strip()]
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["n"], r["cell"]), []).append(r)
    steps = sorted({e["step"] for r in runs for e in r["evals"]})
    out = ["| N | cell | seeds | " + " | ".join(f"FID @{s}" for s in steps) + " | CPU s/run |",
           "|---|---|---|" + "---|" * len(steps) + "---|"]
    for (n, cell), rs in sorted(groups.items()):
        cols = [mean_se([e["fid"] for r in rs for e in r["evals"] if e["step"] == s]) for s in steps]
        out.append(f"| {n} | {cell} | {len(rs)} | " + " | ".join(cols) + f" | {mean_se([r['cpu_s'] for r in rs])} |")
    out += ["", "| N | cell | seed | overfit share at each evaluation | discriminator-overfits flag (replayed) | "
            "final FID |", "|---|---|---|---|---|---|"]
    for (n, cell), rs in sorted(groups.items()):
        for r in sorted(rs, key=lambda r: r["seed"]):
            shares = " ".join("—" if e["d_overfit"] is None else f"{e['d_overfit']:.2f}" for e in r["evals"])
            flags = replayed_flags(r["evals"])
            out.append(f"| {n} | {cell} | {r['seed']} | {shares} | {'step ' + str(flags[0]) if flags else 'none'} | "
                       f"{r['final_fid']:.1f} |")
    ada = [r for r in runs if r["ada_p"]]
    if ada:
        out += ["", "| N | seed | " + " | ".join(f"p @{s}" for s in steps) + " |",
                "|---|---|" + "---|" * len(steps)]
        for r in sorted(ada, key=lambda r: (r["n"], r["seed"])):
            p_at = dict((step, p) for step, p in r["ada_p"])
            out.append(f"| {r['n']} | {r['seed']} | " + " | ".join(f"{p_at.get(s, float('nan')):.3f}" for s in steps)
                       + " |")
    return "\n".join(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[500], help="training digits (each a run set)")
    p.add_argument("--cells", default="baseline,diffaugment,ada", help=f"comma list of {', '.join(CELLS)}")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--eval-every", type=int, default=300)
    p.add_argument("--out", type=Path)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "little-data")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--report", type=Path, nargs="+", help="print the tables of these result files and stop")
    args = p.parse_args(argv)
    if args.report:
        print(report(args.report))
        return
    cells = [c for c in args.cells.split(",") if c]
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        sys.exit(f"little_data.py: unknown cell {unknown[0]!r}; choose from {', '.join(CELLS)}")
    if args.out is None:
        sys.exit("little_data.py: give --out (or --report FILES)")
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
