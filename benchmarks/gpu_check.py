"""The GPU checks in one short run (~2-3 minutes on one GPU): overhead, data parallel, throughput, memory.

    python benchmarks/gpu_check.py --out "$OUT"               # on a CUDA machine
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/check   # the same code paths on a CPU

Parts, each in its own ``try`` (a failure prints its traceback, is recorded, and the
next part runs); ``results.json`` and ``results.md`` in ``--out`` are rewritten after
every part, so a run cut short still leaves what it measured:

1. ``overhead``: benchmarks/overhead.py on the device (ring MLP and DCGAN, fp32 and bf16):
   gantricks (``step_deferred``, logs read as ``train`` reads them) against a hand-written loop,
   interleaved, median ratio.
2. ``ddp``: ``torchrun --nproc_per_node N`` (N = the GPUs, at most 2; 1 on a CPU) trains
   ring8 for ``--ddp-steps`` steps through the data-parallel code (process group, gradient
   all-reduce, rank-0 files), and one process trains the same config without torchrun;
   the final parameters are compared (with N = 1 they must agree to float precision).
3. ``throughput``: steps/s and peak memory (``torch.cuda.max_memory_allocated``) of
   the library's loop on the ring MLP (batch 100) and a DCGAN (32x32x3, batch 64), fp32 and bf16.
4. ``unrolled``: ms per step of ``unrolled`` and ``lookahead`` against k, and a line fit.
5. ``compile`` (only with ``--compile``): the overhead comparison with ``torch.compile``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import overhead  # noqa: E402  (benchmarks/overhead.py)
import unrolled_timing  # noqa: E402  (benchmarks/unrolled_timing.py)

import gantricks as gt  # noqa: E402
from gantricks.checkpoint import load_latest  # noqa: E402
from gantricks.train import default_read_every  # noqa: E402


def environment(device: torch.device) -> dict:
    out = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
           "cpus": os.cpu_count()}
    if device.type == "cuda":
        out.update(gpu=torch.cuda.get_device_name(device), gpus=torch.cuda.device_count(),
                   capability=".".join(map(str, torch.cuda.get_device_capability(device))),
                   bf16=torch.cuda.is_bf16_supported(), cuda=torch.version.cuda)
    return out


def part_overhead(args, device: torch.device) -> list[dict]:
    rows = []
    for precision in args.precisions:
        rows += overhead.main(["--device", str(device), "--steps", str(args.steps), "--repeats", str(args.repeats),
                               "--warmup", str(args.warmup), "--precision", precision,
                               "--threads", str(args.threads), *args.dcgan_width_flag])
    return rows


def _train_cmd(args, device: torch.device, out: Path) -> list[str]:
    return ["-m", "gantricks", "train", "--data", "ring8", *args.ddp_nets, "--steps", str(args.ddp_steps),
            "--batch-size", "100", "--device", device.type, "--eval-every", "0", "--checkpoint-every", "0",
            "--eval-samples", "2500", "--no-progress", "--out", str(out), "--overwrite"]


def part_ddp(args, device: torch.device) -> dict:
    procs = min(2, torch.cuda.device_count()) if device.type == "cuda" else 1
    root = Path(args.out) / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    runs = {}
    for name, launcher in ((f"torchrun-{procs}", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                   "--nproc_per_node", str(procs)]),
                           ("single", [sys.executable])):
        start = time.perf_counter()
        r = subprocess.run(launcher + _train_cmd(args, device, root / name), capture_output=True, text=True,
                           env=env, timeout=args.ddp_timeout)
        wall = time.perf_counter() - start
        if r.returncode != 0:
            raise RuntimeError(f"{name} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
        final = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
        runs[name] = {"wall_s": round(wall, 2), "final": final}
    states = [load_latest(root / name / "checkpoints")[1]["gan"]["modules"] for name in runs]
    diff = max((a[m][k].double() - states[1][m][k].double()).abs().max().item()
               for a in states[:1] for m in a for k in a[m] if a[m][k].is_floating_point())
    return {"processes": procs, "steps": args.ddp_steps, "max_abs_param_diff": diff,
            "agree": diff < 1e-4 if procs == 1 else None, "runs": runs}


def _steps_per_s(model: str, precision: str, device: torch.device, steps: int, warmup: int,
                 width: int | None) -> dict:
    G, D, z_shape, sampler, batch, nets = overhead.make_model(model, width)
    gan = gt.GAN(G, D, z_shape=z_shape, z_dim=z_shape[0], lr_g=overhead.LR, lr_d=overhead.LR,
                 betas=overhead.BETAS, device=device, precision=precision)
    loop = overhead.LibraryLoop(gan, lambda: sampler(batch), default_read_every(device))
    for _ in range(warmup):
        loop()
    loop.flush()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    wall, _ = overhead.timed(loop, steps, device)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
    return {"model": model, "nets": nets, "batch": batch, "precision": precision, "steps": steps,
            "steps_per_s": round(steps / wall, 2), "ms_per_step": round(1000 * wall / steps, 3),
            "peak_memory_mib": round(peak, 1) if peak is not None else None}


def part_throughput(args, device: torch.device) -> list[dict]:
    return [_steps_per_s(model, precision, device, args.steps, args.warmup, args.dcgan_width if model == "dcgan"
                         else None)
            for model in ("ring-mlp", "dcgan") for precision in args.precisions]


def part_unrolled(args, device: torch.device) -> dict:
    steps, repeats = args.unrolled_steps, max(1, args.repeats // 2)
    standard = unrolled_timing.ms_per_step("standard", steps, repeats, str(device))
    out = {"ks": args.ks, "standard_ms": standard[0], "schemes": {}}
    for name in ("unrolled", "lookahead"):
        wall = [unrolled_timing.ms_per_step(f"{name}:k={k}", steps, repeats, str(device))[0] for k in args.ks]
        a, b = unrolled_timing.line_fit(args.ks, wall) if len(args.ks) > 1 else (wall[0], 0.0)
        worst = max(abs(m - (a + b * k)) / m for k, m in zip(args.ks, wall))
        out["schemes"][name] = {"wall_ms": wall, "fit_a_ms": a, "fit_b_ms_per_k": b, "worst_residual": worst,
                                "steps_per_s": [round(1000 / m, 2) for m in wall]}
    return out


def part_compile(args, device: torch.device) -> list[dict]:
    return overhead.main(["--device", str(device), "--steps", str(args.steps), "--repeats", str(args.repeats),
                          "--warmup", str(max(args.warmup, 3)), "--compile", "--threads", str(args.threads),
                          *args.dcgan_width_flag])


def markdown(results: dict) -> str:
    lines = ["# gantricks GPU check", "", "```", json.dumps(results.get("environment", {}), indent=1), "```", ""]
    for row in results.get("overhead", []) or []:
        lines.append(f"- overhead {row['model']} {row['precision']}: gantricks {row['ms_gantricks']:.2f} ms, "
                     f"hand-written {row['ms_hand']:.2f} ms, ratio {row['ratio']:.3f} ({row['clock']} time)")
    ddp = results.get("ddp")
    if isinstance(ddp, dict) and "processes" in ddp:
        lines.append(f"- ddp: torchrun {ddp['processes']} process(es) vs one, {ddp['steps']} steps: max |Δparam| "
                     f"{ddp['max_abs_param_diff']:.3g}; " + ", ".join(
                         f"{k}: {v['wall_s']} s, {v['final'].get('modes_covered')} modes" for k, v in ddp["runs"].items()))
    for row in results.get("throughput", []) or []:
        lines.append(f"- throughput {row['model']} {row['precision']}: {row['steps_per_s']} steps/s, "
                     f"peak memory {row['peak_memory_mib']} MiB")
    un = results.get("unrolled")
    if isinstance(un, dict) and "schemes" in un:
        for name, s in un["schemes"].items():
            lines.append(f"- {name}: ms/step at k={un['ks']}: {[round(x, 2) for x in s['wall_ms']]} ≈ "
                         f"{s['fit_a_ms']:.2f} + {s['fit_b_ms_per_k']:.2f}·k (worst residual {s['worst_residual']:.0%})")
    for part, err in results.get("errors", {}).items():
        lines += ["", f"## {part} FAILED", "```", err, "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu-check-"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that every part runs")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--parts", nargs="+", default=["overhead", "ddp", "throughput", "unrolled"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    quick = args.quick
    args.steps, args.repeats, args.warmup = (2, 1, 1) if quick else (20, 5, 5)
    args.ddp_steps = 5 if quick else 300
    args.ddp_nets = ["--generator", "mlp:width=32,depth=2", "--discriminator", "mlp:width=32,depth=2"] if quick else []
    args.ddp_timeout = 300
    args.unrolled_steps = 1 if quick else 10
    args.ks = [0, 1, 2] if quick else [0, 1, 2, 5, 10]
    args.dcgan_width = 8 if quick else None
    args.dcgan_width_flag = ["--dcgan-width", str(args.dcgan_width)] if args.dcgan_width else []
    bf16 = device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())
    args.precisions = ["fp32", "bf16"] if bf16 and not quick else ["fp32"]
    if args.compile:
        args.parts.append("compile")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"environment": environment(device), "command": " ".join(sys.argv), "errors": {}}
    parts = {"overhead": part_overhead, "ddp": part_ddp, "throughput": part_throughput,
             "unrolled": part_unrolled, "compile": part_compile}
    for name in args.parts:
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            results[name] = parts[name](args, device)
        except Exception:   # noqa: BLE001  (every part runs, whatever the others do)
            results["errors"][name] = traceback.format_exc()
            print(results["errors"][name], file=sys.stderr, flush=True)
        results.setdefault("seconds", {})[name] = round(time.perf_counter() - start, 1)
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
        (out / "results.md").write_text(markdown(results))
    print((out / "results.md").read_text())
    return results


if __name__ == "__main__":
    main()
