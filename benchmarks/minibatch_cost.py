"""Cost of minibatch discrimination: ms per ``gan.step`` without and with the trick, side by side.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/minibatch_cost.py [--protocol fast] [--steps 20]
        [--repeats 9] [--tricks minibatch-discrimination,minibatch-discrimination:form=simple]
        [--scheme standard] [--threads 1]

Each GAN is built from the protocol's settings (``fast``: G ``mlp:width=128,depth=3``, D
``mlp:width=128,depth=3,maxout=1``, batch 100) on ring8, one per cell (the baseline and each
trick spec). After warm-up steps, each repeat times ``--steps`` steps of every cell in turn, the
order rotating between repeats (interleaved, so a busy machine slows all cells alike). Printed:
the median ms per step of each cell and its ratio to the baseline (median of per-repeat ratios), in
wall-clock time and in this process's CPU time (which other processes on a busy machine inflate less).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from gantricks.bench import PROTOCOLS
from gantricks.build import build_data, build_gan
from gantricks.config import TrainConfig


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cells = {"baseline": ()} | {spec: tuple(spec.split("|")) for spec in args.tricks.split(",") if spec}
    built = {name: make(args.protocol, tricks, args.scheme) for name, tricks in cells.items()}
    for gan, batch in built.values():
        for _ in range(args.warmup):
            gan.step(batch())
    times: dict[str, list[float]] = {name: [] for name in cells}
    cpu: dict[str, list[float]] = {name: [] for name in cells}
    names = list(cells)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            gan, batch = built[name]
            batches = [batch() for _ in range(args.steps)]
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


if __name__ == "__main__":
    main()
