"""Time per step of the unrolled and lookahead schemes against k, on PacGAN's MLPs on ring8.

    python benchmarks/unrolled_timing.py [--ks 0 1 2 5 10] [--steps 20] [--repeats 3] [--threads 1]

Prints wall and CPU ms per step (each the best of ``--repeats`` timings of ``--steps``
steps, after warm-up steps) for ``standard`` and for ``unrolled`` and ``lookahead`` at
each k, and a least-squares line CPU(k) ≈ a + b·k (b: the cost of one unroll step).
CPU time (``time.process_time``, one torch thread) is the number to read on a shared
machine; wall time grows with the load.
TrainConfig's defaults are PacGAN's 2D setup (its MLPs, batch 100, Adam lr 1e-4, β1 0.8).
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from gantricks.build import build_data, build_gan
from gantricks.config import TrainConfig


def ms_per_step(scheme: str, steps: int, repeats: int, device: str) -> tuple[float, float]:
    """(wall, CPU) milliseconds per step, each the best of ``repeats`` timings of ``steps`` steps."""
    config = TrainConfig(data="ring8", scheme=scheme, device=device, seed=0)   # defaults: PacGAN's 2D setup
    sampler = build_data(config)
    gan = build_gan(config, sampler.shape)
    next_real = lambda: sampler(config.batch_size)  # noqa: E731
    for _ in range(3):                                # warm-up: allocator, Adam state
        gan.step(next_real)
    wall = cpu = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            gan.step(next_real)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall = min(wall, (time.perf_counter() - start) / steps * 1000)
        cpu = min(cpu, (time.process_time() - start_cpu) / steps * 1000)
    return wall, cpu


def line_fit(ks: list[int], ms: list[float]) -> tuple[float, float]:
    """Least-squares line ms ≈ a + b·k; b is the cost of one unroll step."""
    mk, mm = sum(ks) / len(ks), sum(ms) / len(ms)
    b = sum((k - mk) * (m - mm) for k, m in zip(ks, ms)) / sum((k - mk) ** 2 for k in ks)
    return mm - b * mk, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[0, 1, 2, 5, 10])
    parser.add_argument("--steps", type=int, default=20, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per cell; the best is kept")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    standard = ms_per_step("standard", args.steps, args.repeats, args.device)
    rows = {name: [ms_per_step(f"{name}:k={k}", args.steps, args.repeats, args.device) for k in args.ks]
            for name in ("unrolled", "lookahead")}
    print(f"device {args.device}, torch threads {args.threads}, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("ms per step, wall (time.perf_counter) / CPU (time.process_time); x: CPU time over standard's;")
    print("steps/s from CPU time on a CPU device, else from the wall clock")
    print(f"{'scheme':>10} | {'k':>3} | {'wall':>7} | {'CPU':>7} | {'x':>5} | {'steps/s':>7}")
    print(f"{'-' * 10}-+-{'-' * 3}-+-{'-' * 7}-+-{'-' * 7}-+-{'-' * 5}-+-{'-' * 7}")
    rate = (lambda wall, cpu: 1000 / cpu) if args.device == "cpu" else (lambda wall, cpu: 1000 / wall)
    print(f"{'standard':>10} | {'-':>3} | {standard[0]:>7.1f} | {standard[1]:>7.1f} | {1:>5.2f} | "
          f"{rate(*standard):>7.1f}")
    for name, timings in rows.items():
        for k, (wall, cpu) in zip(args.ks, timings):
            print(f"{name:>10} | {k:>3} | {wall:>7.1f} | {cpu:>7.1f} | {cpu / standard[1]:>5.2f} | "
                  f"{rate(wall, cpu):>7.1f}")
    if len(args.ks) > 1:
        for name, timings in rows.items():
            cpu = [c for _, c in timings]
            a, b = line_fit(args.ks, cpu)
            worst = max(abs(m - (a + b * k)) / m for k, m in zip(args.ks, cpu))
            print(f"{name}: CPU ms/step ≈ {a:.1f} + {b:.1f}·k (least squares); largest relative residual {worst:.0%}")

if __name__ == "__main__":
    main()
