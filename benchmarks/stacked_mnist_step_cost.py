"""Seconds per training step of each Stacked MNIST bench cell under the dcgan-small protocol, and of one
evaluation (10,000 samples: modes, KL, FID, KID, PRDC), on one CPU thread (or --device cuda).

    python benchmarks/stacked_mnist_step_cost.py [--cells baseline,pacgan,...] [--steps 20] [--device cpu]

Prints one JSON line per cell: {"cell", "s_per_step", "params_g", "params_d"}, then the evaluation's cost.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from gantricks.bench import PROTOCOLS, cells
from gantricks.build import build_data, build_gan
from gantricks.config import TrainConfig, from_mapping
from gantricks.train import evaluate

DEFAULT_CELLS = "baseline,pacgan,unrolled,madgan,minibatch-discrimination"


def step_cost(cell: str, steps: int, device: str) -> dict:
    config = from_mapping({**cells()[cell], "data": "stacked-mnist", "device": device},
                          TrainConfig(**PROTOCOLS["dcgan-small"]))
    sampler = build_data(config)
    gan = build_gan(config, sampler.shape)
    next_real = lambda: sampler(config.batch_size).to(gan.device)  # noqa: E731
    for _ in range(3):                                   # warm-up: allocator, cuDNN autotuning
        gan.step(next_real)
    if gan.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        gan.step(next_real)
    if gan.device.type == "cuda":
        torch.cuda.synchronize()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {"cell": cell, "s_per_step": round((time.perf_counter() - t0) / steps, 4),
            "params_g": count(gan.modules["G"]), "params_d": count(gan.modules["D"])}, gan, sampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=DEFAULT_CELLS)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-samples", type=int, default=PROTOCOLS["dcgan-small"]["eval_samples"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gan = sampler = None
    for cell in args.cells.split(","):
        result, gan, sampler = step_cost(cell, args.steps, args.device)
        print(json.dumps({**result, "device": args.device, "threads": args.threads}), flush=True)
    for label in ("first (reference features extracted)", "later (reference features reused)"):
        t0 = time.perf_counter()
        metrics, _ = evaluate(gan, sampler, args.eval_samples)
        print(json.dumps({"evaluation": label, "samples": args.eval_samples,
                          "seconds": round(time.perf_counter() - t0, 2),
                          **{k: metrics[k] for k in ("modes_covered", "kl_to_uniform", "fid") if k in metrics}}),
              flush=True)


if __name__ == "__main__":
    main()
