"""Cost of minibatch discrimination: ms per ``gan.step`` without and with the trick, side by side.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/minibatch_cost.py [--protocol fast] [--steps 20]
        [--repeats 9] [--tricks minibatch-discrimination,minibatch-discrimination:form=simple]
        [--scheme standard] [--threads 1] [--out benchmarks/results/minibatch-cost.jsonl]

Each GAN is built from the protocol's settings (``fast``: G ``mlp:width=128,depth=3``, D
``mlp:width=128,depth=3,maxout=1``, batch 100) on ring8, one per cell (the baseline and each
trick spec). After warm-up steps, each repeat times ``--steps`` steps of every cell in turn, the
order rotating between repeats (interleaved, so a busy machine slows all cells alike). Printed:
the median ms per step of each cell and its ratio to the baseline (median of per-repeat ratios), in
wall-clock time and in this process's CPU time (which other processes on a busy machine inflate less).

A spec may end in ``@torch`` (its pairwise sums by the torch formulation, as where the native kernels are
not built: ``GANTRICKS_NATIVE=0`` while its steps run) or ``@zero`` (the pairwise sums replaced by zeros,
still in the graph: what the rest of the layer costs, its projections and weight norm).
``--out`` appends one JSON line per cell.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time

import torch

from gantricks.bench import PROTOCOLS
from gantricks.build import build_data, build_gan
from gantricks.config import TrainConfig
from gantricks.tricks import minibatch_discrimination

PAIRWISE = ("native", "torch", "zero")


@contextlib.contextmanager
def pairwise(mode: str):
    """The pairwise sums as ``mode`` says while the block runs (module docstring)."""
    saved_env, saved_function = os.environ.get("GANTRICKS_NATIVE"), minibatch_discrimination.kernel_closeness
    if mode == "torch":
        os.environ["GANTRICKS_NATIVE"] = "0"
    elif mode == "zero":
        minibatch_discrimination.kernel_closeness = lambda M, include_self=False: M.sum(dim=2) * 0
    try:
        yield
    finally:
        minibatch_discrimination.kernel_closeness = saved_function
        if saved_env is None:
            os.environ.pop("GANTRICKS_NATIVE", None)
        else:
            os.environ["GANTRICKS_NATIVE"] = saved_env


def make(protocol: str, tricks: tuple[str, ...], scheme: str):
    config = TrainConfig(**PROTOCOLS[protocol], data="ring8", tricks=tricks, scheme=scheme)
    sampler = build_data(config)
    gan = build_gan(config, sampler.shape)
    return gan, lambda: sampler(config.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="fast", choices=sorted(PROTOCOLS))
    parser.add_argument("--tricks", default="minibatch-discrimination",
                        help="comma-separated trick specs, each timed against the baseline ('|' inside a spec: "
                             "several tricks)")
    parser.add_argument("--scheme", default="standard")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="", help="append one JSON line per cell to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cells = {"baseline": ()} | {spec: tuple(spec.rpartition("@")[0 if "@" in spec else 2].split("|"))
                                for spec in args.tricks.split(",") if spec}
    modes = {name: name.rpartition("@")[2] if "@" in name else "native" for name in cells}
    unknown = sorted(set(modes.values()) - set(PAIRWISE))
    if unknown:
        parser.error(f"unknown pairwise mode(s) {', '.join(unknown)}: use @{', @'.join(PAIRWISE[1:])}")
    built = {name: make(args.protocol, tricks, args.scheme) for name, tricks in cells.items()}
    for name, (gan, batch) in built.items():
        with pairwise(modes[name]):
            for _ in range(args.warmup):
                gan.step(batch())
    times: dict[str, list[float]] = {name: [] for name in cells}
    cpu: dict[str, list[float]] = {name: [] for name in cells}
    names = list(cells)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            gan, batch = built[name]
            batches = [batch() for _ in range(args.steps)]
            with pairwise(modes[name]):
                t0, c0 = time.perf_counter(), time.process_time()
                for x in batches:
                    gan.step(x)
                times[name].append((time.perf_counter() - t0) / args.steps * 1e3)
                cpu[name].append((time.process_time() - c0) / args.steps * 1e3)
    print(f"protocol {args.protocol}, scheme {args.scheme}, batch {PROTOCOLS[args.protocol]['batch_size']}, "
          f"{args.threads} thread(s), {args.repeats} interleaved repeats of {args.steps} steps; median ms per step "
          f"(wall clock, and CPU time of this process) and median ratio to the baseline")
    for name in names:
        ratio = statistics.median(t / b for t, b in zip(times[name], times["baseline"]))
        cpu_ratio = statistics.median(t / b for t, b in zip(cpu[name], cpu["baseline"]))
        print(f"{name:45s} wall {statistics.median(times[name]):7.2f} ms  x{ratio:5.2f}   "
              f"cpu {statistics.median(cpu[name]):7.2f} ms  x{cpu_ratio:5.2f}")
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps({"cell": name, "protocol": args.protocol, "scheme": args.scheme,
                                    "batch_size": PROTOCOLS[args.protocol]["batch_size"], "threads": args.threads,
                                    "steps": args.steps, "repeats": args.repeats,
                                    "wall_ms": statistics.median(times[name]), "wall_ratio": ratio,
                                    "cpu_ms": statistics.median(cpu[name]), "cpu_ratio": cpu_ratio,
                                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")


if __name__ == "__main__":
    main()
