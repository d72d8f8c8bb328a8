"""The library's overhead: ``gan.step`` against a hand-written PyTorch loop, side by side.

    python benchmarks/overhead.py [--models mlp64 mlp128 ring-mlp dcgan] [--steps N] [--repeats 7] [--device cpu]
                                  [--threads 1] [--precision fp32|bf16] [--compile] [--json out.json]

Both paths train the same nets (two copies of one initialisation), on the same data
source, batch size, optimizers (Adam, PacGAN's lr 1e-4 and β 0.8/0.999) and losses
(the non-saturating GAN: BCE with logits, D's fakes drawn under ``no_grad``, D frozen during
G's update). The hand-written loop is what one writes without a library: no logs, no checks. The library
path in addition logs the losses and checks at every step that the losses and gradients are finite, and
computes D's mean logits and accuracies and the gradient norms every ``--diagnose-every`` steps and on the
logged steps, as ``gantricks train`` does (its ``diagnose_every`` and ``log_every``): ``gan.step_deferred``
each step and one ``gan.read`` of the logs every ``--read-every`` steps (default as ``train``: every step on a
CPU, where a read is free, every 32 on a GPU, where each read waits for the device) and at the end of each
timing. "every step" is the same with every diagnostic at every step (``diagnose_every`` 1).
A third path, "losses only", is the library with ``diagnostics=False``: it logs the losses and keeps
the finite checks (a fused check of the gradients instead of their norms), without D's accuracies,
mean logits and gradient norms.

Timings are interleaved: each repeat times ``--steps`` steps of each path in turn, rotating which
goes first, after warm-up steps. Printed: the median ms per
step of each path and the throughput ratio library / hand-written (median of the per-
repeat ratios; 1.0 = no overhead). Models:

* ``mlp64``, ``mlp128``: a user's own small nets (``nn.Sequential``, 3 hidden ReLU layers of width
  64 at batch 256, of width 128 at batch 100) on ring8: a first experiment, where a step is short and
  the library's fixed per-step work shows most.
* ``ring-mlp``: PacGAN's 2D nets (G 4x400 ReLU+BN, D 3x200 maxout-5) on ring8, batch 100.
* ``dcgan``: a DCGAN (Radford et al. 2016) for 32x32x3 images, batch 64 (the registry's
  ``dcgan`` net where one exists, else the one defined here), on a fixed set of random images.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import gantricks as gt
from gantricks.train import default_read_every
from gantricks.data.sources import FixedSet
from gantricks.registry import datasets, nets

LR, BETAS = 1e-4, (0.8, 0.999)
LOG_EVERY = gt.TrainConfig().log_every     # steps between logged steps, which always have every diagnostic


# --- nets ------------------------------------------------------------------------------------
class DCGANGenerator(nn.Module):
    """z (B, z_dim, 1, 1) -> (B, channels, 32, 32): transposed convs with batch norm, tanh output."""

    def __init__(self, z_dim: int = 100, width: int = 64, channels: int = 3):
        super().__init__()
        self.z_dim, self.z_shape = z_dim, (z_dim, 1, 1)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(z_dim, width * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(width * 4), nn.ReLU(True),
            nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.ReLU(True),
            nn.ConvTranspose2d(width * 2, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
            nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh())

    def forward(self, z):
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """(B, channels, 32, 32) -> logits (B,): strided convs with leaky ReLU (batch norm after the first)."""

    def __init__(self, width: int = 64, channels: int = 3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width * 2, width * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 4), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width * 4, 1, 4, 1, 0))

    def forward(self, x):
        return self.net(x).flatten()


class SmallMLP(nn.Sequential):
    """A user's own small MLP, as written by hand: ``depth`` hidden layers of ``width`` ReLU units."""

    def __init__(self, n_in: int, n_out: int, width: int, depth: int = 3, squeeze: bool = False):
        layers, n = [], n_in
        for _ in range(depth):
            layers += [nn.Linear(n, width), nn.ReLU()]
            n = width
        super().__init__(*layers, nn.Linear(n, n_out), *([nn.Flatten(0)] if squeeze else []))


SMALL_NETS = {"mlp64": (64, 256), "mlp128": (128, 100)}     # (width, batch): a user's first experiment
DEFAULT_STEPS = {"mlp64": 100, "mlp128": 100, "ring-mlp": 30, "dcgan": 5}      # per timing, when not given


def make_model(name: str, width: int | None = None):
    """(G, D, z_shape, sampler, batch size, where the nets come from)."""
    torch.manual_seed(0)
    if name in SMALL_NETS:
        width, batch = SMALL_NETS[name]
        sampler = datasets.build("ring8", seed=0)
        G, D = SmallMLP(2, 2, width), SmallMLP(2, 1, width, squeeze=True)
        return G, D, (2,), sampler, batch, f"nn.Sequential, 3x{width} ReLU"
    if name == "ring-mlp":
        sampler = datasets.build("ring8", seed=0)
        G = nets.build("mlp", role="generator", data_shape=(2,), z_dim=2)
        D = nets.build("mlp", role="discriminator", data_shape=(2,), z_dim=2)
        return G, D, (2,), sampler, 100, "gantricks mlp (PacGAN)"
    if name == "dcgan":
        images = torch.rand(2048, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
        sampler = FixedSet(images, torch.Generator().manual_seed(0))
        where = "benchmarks/overhead.py"
        if "dcgan" in nets.names():
            try:
                opts = {} if width is None else {"width": width}
                G = nets.build("dcgan", role="generator", data_shape=(3, 32, 32), z_dim=100, **opts)
                D = nets.build("dcgan", role="discriminator", data_shape=(3, 32, 32), z_dim=100, **opts)
                return G, D, tuple(getattr(G, "z_shape", (100,))), sampler, 64, "gantricks dcgan"
            except Exception as err:   # an option this script guesses may not exist there
                where += f" (registry dcgan failed: {err})"
        G, D = DCGANGenerator(100, width or 64), DCGANDiscriminator(width or 64)
        return G, D, G.z_shape, sampler, 64, where
    raise SystemExit(f"unknown model {name!r}")


# --- the two loops ---------------------------------------------------------------------------
def hand_written(G: nn.Module, D: nn.Module, z_shape: tuple[int, ...], next_real: Callable[[], torch.Tensor],
                 device: torch.device, autocast: Callable[[], contextlib.AbstractContextManager], fused: bool = False):
    """One step of the plain PyTorch loop (a closure over its own optimizers): torch's default Adam, or
    with ``fused`` its fused kernel, the one the library asks for."""
    opt_d = torch.optim.Adam(D.parameters(), lr=LR, betas=BETAS, fused=fused or None)
    opt_g = torch.optim.Adam(G.parameters(), lr=LR, betas=BETAS, fused=fused or None)
    d_params = list(D.parameters())

    def step() -> None:
        G.train(), D.train()
        real = next_real().to(device)
        b = real.shape[0]
        with autocast(), torch.no_grad():
            fake = G(torch.randn(b, *z_shape, device=device))
        with autocast():
            real_logits, fake_logits = D(real).float(), D(fake).float()
            d_loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones(b, device=device)) \
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros(b, device=device))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        for p in d_params:
            p.requires_grad_(False)
        with autocast():
            logits = D(G(torch.randn(b, *z_shape, device=device))).float()
            g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones(b, device=device))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)
    return step


class LibraryLoop:
    """``gantricks train``'s inner loop without its files: a step, and the logs read every ``read_every``.
    D's accuracies, mean logits and the gradient norms are computed every ``diagnose_every`` steps (and on the
    logged ones, every ``LOG_EVERY``), as ``train`` does; ``diagnostics=False``: never."""

    def __init__(self, gan: "gt.GAN", next_real: Callable[[], torch.Tensor], read_every: int,
                 diagnostics: bool = True, diagnose_every: int = 1):
        self.gan, self.next_real, self.read_every, self.pending = gan, next_real, read_every, []
        self.diagnostics, self.diagnose_every = diagnostics, diagnose_every
        self.logs: dict = {}

    def __call__(self) -> None:
        at = self.gan.step_count + 1
        if self.diagnostics and (at % self.diagnose_every == 0 or at % LOG_EVERY == 0):
            self.pending.append(self.gan.step_deferred(self.next_real))   # (also a library from before diagnostics=)
        else:
            self.pending.append(self.gan.step_deferred(self.next_real, diagnostics=False))
        if len(self.pending) >= self.read_every:
            self.flush()

    def flush(self) -> None:
        for _, self.logs in self.gan.read(self.pending):
            pass
        self.pending = []


def library(G: nn.Module, D: nn.Module, z_shape: tuple[int, ...], next_real: Callable[[], torch.Tensor],
            device: torch.device, precision: str, compile: bool, read_every: int = 1, diagnostics: bool = True,
            diagnose_every: int = 1) -> LibraryLoop:
    gan = gt.GAN(G, D, z_shape=z_shape, z_dim=z_shape[0], loss="nonsaturating", lr_g=LR, lr_d=LR, betas=BETAS,
                 device=device, **_extra(precision, compile))
    return LibraryLoop(gan, next_real, read_every, diagnostics, diagnose_every)


def train_diagnose_every() -> int:
    """``gantricks train``'s default steps between diagnostics (1 for a library from before the setting)."""
    return getattr(gt.TrainConfig(), "diagnose_every", 1)


def _extra(precision: str, compile: bool) -> dict:
    """GAN keywords for precision and compile (left out at their defaults, for older versions)."""
    out = {}
    if precision != "fp32":
        out["precision"] = precision
    if compile:
        out["compile"] = True
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(step: Callable[[], object], steps: int, device: torch.device) -> tuple[float, float]:
    """(wall, CPU) seconds for ``steps`` steps (the device's queue drained before and after)."""
    _sync(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    if hasattr(step, "flush"):
        step.flush()                     # the library's logs of these steps are read inside the timing
    _sync(device)
    return time.perf_counter() - start, time.process_time() - start_cpu


def compare(model: str, steps: int, repeats: int, warmup: int, device: torch.device, precision: str,
            compile: bool, width: int | None = None, read_every: int | None = None, losses_only: bool = True,
            diagnose_every: int = 1) -> dict:
    """Interleaved timings of both paths on ``model``; medians and the throughput ratio."""
    G, D, z_shape, sampler, batch, where = make_model(model, width)
    G2, D2, G3, D3 = copy.deepcopy(G), copy.deepcopy(D), copy.deepcopy(G), copy.deepcopy(D)
    G4, D4 = copy.deepcopy(G), copy.deepcopy(D)
    sampler2, sampler3, sampler4 = copy.deepcopy(sampler), copy.deepcopy(sampler), copy.deepcopy(sampler)
    dtype = torch.bfloat16
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if precision == "bf16" else contextlib.nullcontext
    G2.to(device), D2.to(device), G4.to(device), D4.to(device)
    if compile:
        G2.compile(), D2.compile(), G4.compile(), D4.compile()
    fused = gt.GAN(copy.deepcopy(G), copy.deepcopy(D), z_shape=z_shape, z_dim=z_shape[0],
                   device=device).optimizers["D"].defaults.get("fused") is True
    read_every = read_every or default_read_every(device)
    G5, D5, sampler5 = copy.deepcopy(G), copy.deepcopy(D), copy.deepcopy(sampler)
    paths = {"gantricks": library(G, D, z_shape, lambda: sampler(batch), device, precision, compile, read_every,
                                  diagnose_every=diagnose_every),
             "every-step": library(G5, D5, z_shape, lambda: sampler5(batch), device, precision, compile, read_every),
             "hand-written": hand_written(G2, D2, z_shape, lambda: sampler2(batch), device, autocast),
             "losses-only": library(G3, D3, z_shape, lambda: sampler3(batch), device, precision, compile, read_every,
                                    diagnostics=False)}
    if fused:     # the same Adam kernel as the library's: what is left is the library's own work
        paths["hand-fused"] = hand_written(G4, D4, z_shape, lambda: sampler4(batch), device, autocast, fused=True)
    if not losses_only:
        del paths["losses-only"]
    if diagnose_every == 1:      # the two library paths are the same one
        del paths["every-step"]
    for step in paths.values():
        for _ in range(warmup):
            step()
        if hasattr(step, "flush"):
            step.flush()
    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    order = list(paths)
    for r in range(repeats):
        for name in order[r % len(order):] + order[:r % len(order)]:     # each path first in turn
            w, c = timed(paths[name], steps, device)
            wall[name].append(w / steps)
            cpu[name].append(c / steps)
    # on a CPU, process time (one torch thread) is what other processes on the machine do not inflate;
    # on an accelerator the wall clock is the measure
    times = cpu if device.type == "cpu" else wall
    ratios = [h / g for g, h in zip(times["gantricks"], times["hand-written"])]
    lean = [h / g for g, h in zip(times.get("losses-only", []), times["hand-written"])] or [math.nan]
    same = [h / g for g, h in zip(times["gantricks"], times["hand-fused"])] if fused else [math.nan]
    same_lean = [h / g for g, h in zip(times.get("losses-only", []), times["hand-fused"])] if fused else [math.nan]
    every = times.get("every-step", times["gantricks"])
    same_every = [h / g for g, h in zip(every, times["hand-fused"])] if fused else [math.nan]
    return {"model": model, "nets": where, "batch": batch, "device": str(device), "precision": precision,
            "compile": compile, "read_every": read_every, "diagnose_every": diagnose_every, "log_every": LOG_EVERY,
            "steps": steps, "repeats": repeats,
            "clock": "cpu" if times is cpu else "wall",
            "ms_gantricks": 1000 * statistics.median(times["gantricks"]),
            "ms_hand": 1000 * statistics.median(times["hand-written"]),
            "ratio": statistics.median(ratios), "ratios": ratios,
            "ms_losses_only": 1000 * statistics.median(times.get("losses-only", [math.nan])),
            "ratio_losses_only": statistics.median(lean), "ratios_losses_only": lean,
            "fused_adam": fused, "ms_hand_fused": 1000 * statistics.median(times.get("hand-fused", [math.nan])),
            "ratio_same_kernel": statistics.median(same or [math.nan]), "ratios_same_kernel": same or [math.nan],
            "ratio_losses_only_same_kernel": statistics.median(same_lean or [math.nan]),
            "ms_every_step": 1000 * statistics.median(every),
            "ratio_every_step_same_kernel": statistics.median(same_every or [math.nan]),
            "ratio_every_step": statistics.median(h / g for g, h in zip(every, times["hand-written"])),
            "wall_ratio": statistics.median(h / g for g, h in zip(wall["gantricks"], wall["hand-written"])),
            "ms_gantricks_wall": 1000 * statistics.median(wall["gantricks"]),
            "ms_hand_wall": 1000 * statistics.median(wall["hand-written"])}


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp64", "mlp128", "ring-mlp", "dcgan"],
                        choices=[*SMALL_NETS, "ring-mlp", "dcgan"])
    parser.add_argument("--steps", type=int, default=None,
                        help=f"steps per timing (default per model, about 0.3 s of steps: {DEFAULT_STEPS})")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved timings per path")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile G and D on both paths")
    parser.add_argument("--dcgan-width", type=int, default=None, help="DCGAN base width (default: the net's)")
    parser.add_argument("--read-every", type=int, default=None,
                        help="library: steps between reads of the logs (default as gantricks train: 1 on a CPU, 32 else)")
    parser.add_argument("--diagnose-every", type=_positive, default=None,
                        help="library: steps between D's accuracies, mean logits and gradient norms, beside the "
                             "logged steps (default as gantricks train); the every-step path is timed beside it")
    parser.add_argument("--losses-only", action=argparse.BooleanOptionalAction, default=True,
                        help="also time gan.step(diagnostics=False) (--no-losses-only: a library from before it)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = [compare(m, args.steps or DEFAULT_STEPS[m], args.repeats, args.warmup, device, args.precision, args.compile,
                       args.dcgan_width if m == "dcgan" else None, args.read_every, args.losses_only,
                       args.diagnose_every or train_diagnose_every())
               for m in args.models]
    print(f"torch {torch.__version__}, device {device}, {args.threads} torch thread(s), precision {args.precision}"
          f"{', compiled' if args.compile else ''}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"ms per step ({results[0]['clock'] if results else ''} time, median of {args.repeats}); ratio: "
          f"library throughput / hand-written (median of per-repeat ratios; min-max beside it); wall ratio; "
          f"'losses only': gan.step(diagnostics=False), the finite checks kept; 'same kernel': against the "
          f"hand-written loop with the library's fused Adam (absent where the library does not fuse)")
    print(f"{'model':>9} | {'batch':>5} | {'gantricks ms':>12} | {'hand ms':>8} | {'ratio':>5} | {'min-max':>11} | "
          f"{'wall':>5} | {'losses-only ms':>14} | {'ratio':>5} | {'min-max':>11}")
    for r in results:
        spread = lambda xs: f"{min(xs):.3f}-{max(xs):.3f}"  # noqa: E731
        print(f"{r['model']:>9} | {r['batch']:>5} | {r['ms_gantricks']:>12.2f} | {r['ms_hand']:>8.2f} | "
              f"{r['ratio']:>5.3f} | {spread(r['ratios']):>11} | {r['wall_ratio']:>5.3f} | "
              f"{r['ms_losses_only']:>14.2f} | {r['ratio_losses_only']:>5.3f} | {spread(r['ratios_losses_only']):>11}"
              f"   ({r['nets']})")
    if any(r["fused_adam"] for r in results):
        print(f"{'model':>9} | {'hand fused ms':>13} | {'ratio same kernel':>17} | {'min-max':>11} | "
              f"{'losses only, same kernel':>24} | {'diagnostics every step, same kernel':>35}")
        for r in (r for r in results if r["fused_adam"]):
            print(f"{r['model']:>9} | {r['ms_hand_fused']:>13.2f} | {r['ratio_same_kernel']:>17.3f} | "
                  f"{min(r['ratios_same_kernel']):.3f}-{max(r['ratios_same_kernel']):.3f} | "
                  f"{r['ratio_losses_only_same_kernel']:>24.3f} | {r['ratio_every_step_same_kernel']:>35.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
