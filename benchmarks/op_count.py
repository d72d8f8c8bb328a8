"""What the library's step runs beyond a hand-written one: aten ops per step, counted with the PyTorch profiler.

    python benchmarks/op_count.py [--model ring-mlp|dcgan] [--steps 32] [--read-every 32]

Both paths of benchmarks/overhead.py (same nets, batch and optimizers) run ``--steps`` steps under
``torch.profiler``; printed: leaf aten ops per step of each path, then the ops whose count differs.
On a CPU the count stands in for kernel launches on a GPU, where an op that moves data is a kernel
and a view (``as_strided``, ``view``, ``detach``) is not.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import copy

import torch
from torch.profiler import ProfilerActivity, profile

import overhead


def leaf_ops(step, steps: int) -> collections.Counter:
    for _ in range(2):
        step()
    if hasattr(step, "flush"):
        step.flush()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
        if hasattr(step, "flush"):
            step.flush()
    return collections.Counter(e.name for e in prof.events() if e.name.startswith("aten::")
                               and not any(c.name.startswith("aten::") for c in e.cpu_children))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ring-mlp", choices=["ring-mlp", "dcgan"])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--read-every", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    G, D, z_shape, sampler, batch, _ = overhead.make_model(args.model, None)
    G2, D2, sampler2 = copy.deepcopy((G, D, sampler))
    cpu = torch.device("cpu")
    counts = {"gantricks": leaf_ops(overhead.library(G, D, z_shape, lambda: sampler(batch), cpu, "fp32", False,
                                                     args.read_every), args.steps),
              "hand-written": leaf_ops(overhead.hand_written(G2, D2, z_shape, lambda: sampler2(batch), cpu,
                                                             contextlib.nullcontext), args.steps)}
    for name, c in counts.items():
        print(f"{name}: {sum(c.values()) / args.steps:.1f} leaf aten ops per step")
    diff = {op: (counts["gantricks"][op] - counts["hand-written"][op]) / args.steps
            for op in set(counts["gantricks"]) | set(counts["hand-written"])}
    print("per step, gantricks minus hand-written:")
    for op, d in sorted(diff.items(), key=lambda kv: -abs(kv[1])):
        if abs(d) >= 0.01:
            print(f"  {op:32s} {d:+.2f}")
    return diff


if __name__ == "__main__":
    main()
