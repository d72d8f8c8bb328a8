"""pix2pix on edges2mnist with PatchGAN discriminators of different receptive fields
(after Isola et al. 2017, §4.4, Table 3: 1x1 PixelGAN, 16x16 and 70x70 PatchGANs, 286x286 ImageGAN).

    python benchmarks/patchgan_rf.py [--variants 1 16 full l1] [--steps 2000] [--seeds 0]
                                      [--width 32] [--batch-size 32] [--out results.jsonl] [--save-outputs DIR]

Each variant trains the same U-Net G (edge map -> digit, 28x28, 4,500 training pairs) with
G's loss = adversarial (mean over D's patches) + 100·L1, and is scored on the 500 held-out
pairs: L1 to the targets, and sharpness ratios of the outputs to the targets (Tenengrad and
variance of the Laplacian; 1: as sharp as the real digits, < 1: blurrier). Variants:

* ``1``: PixelGAN, ``patchgan:n_layers=0`` (1x1 receptive field);
* ``16``: ``patchgan:n_layers=1`` (16x16);
* ``full``: the smallest PatchGAN whose receptive field covers the image (n_layers=2, 34x34 on
  28x28: an "ImageGAN");
* ``l1``: no discriminator, G trained on the L1 term alone (the paper's blurry baseline);
* any other integer n: ``patchgan:n_layers=n``.

Protocol (ours, for a CPU): Adam lr 2e-4, β1 0.5 (pix2pix), batch 32, U-Net and D width 32,
evaluation with G in eval mode (dropout off, batch-norm running statistics). About 2,000
steps per variant take a few minutes on one CPU core. ``--save-outputs DIR`` writes each
variant's translated test digits (``DIR/<variant>-seed<k>.pt``, ``(500, 1, 28, 28)`` in [-1, 1])
and the targets (``DIR/targets.pt``), e.g. for FID.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gantricks.build import build_data, build_gan
from gantricks.config import TrainConfig
from gantricks.metrics.images import image_metrics
from gantricks.nets.patchgan import receptive_field, whole_image_layers
from gantricks.registry import datasets
from gantricks.schemes.pix2pix import l1_term
from gantricks.translation import evaluate_translation, split_pairs

IMAGE_SIZE = 28


def n_layers_of(variant: str) -> int | None:
    """PatchGAN depth of a variant (None: no discriminator)."""
    if variant == "l1":
        return None
    if variant == "full":
        return whole_image_layers(IMAGE_SIZE)
    if variant == "1":
        return 0
    if variant == "16":
        return 1
    return int(variant)


def run_variant(variant: str, steps: int, seed: int = 0, width: int = 32, batch_size: int = 32,
                l1: float = 100.0, device: str = "cpu") -> tuple[dict, torch.Tensor]:
    """Train one variant; its held-out metrics and translated test outputs."""
    n_layers = n_layers_of(variant)
    config = TrainConfig(data="edges2mnist", scheme=f"pix2pix:l1={l1}", generator=f"unet:width={width}",
                         discriminator=f"patchgan:n_layers={0 if n_layers is None else n_layers},width={width}",
                         lr_g=2e-4, lr_d=2e-4, beta1=0.5, batch_size=batch_size, seed=seed, device=device)
    sampler = build_data(config)
    gan = build_gan(config, sampler.shape)
    next_real = lambda: sampler(batch_size)  # noqa: E731
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        if n_layers is None:       # L1 alone: G's update without any discriminator
            inputs, target = split_pairs(next_real().to(gan.device))
            gan.G.train()
            loss = l1_term(gan.G(inputs), target)
            gan.update("G", loss)
        else:
            gan.step(next_real)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    test = datasets.build("edges2mnist:part=test", seed=0).data
    metrics, outputs = evaluate_translation(gan.G, test)
    # FID of the translated digits against the true ones, in our digit classifier's feature space
    metrics["fid"] = image_metrics(outputs, split_pairs(test)[1], prdc_samples=0)["fid"]
    rf = receptive_field(n_layers, IMAGE_SIZE) if n_layers is not None else None
    row = {"variant": variant, "seed": seed, "steps": steps,
           "discriminator": "none" if n_layers is None else f"patchgan:n_layers={n_layers}",
           "receptive_field": rf.receptive_field if rf else None, "map": rf.output_size if rf else None,
           **{k: round(v, 4) for k, v in metrics.items()},
           "ms_per_step": round(1000 * wall / max(steps, 1), 1), "cpu_s": round(cpu, 1)}
    return row, outputs


def table(rows: list[dict]) -> str:
    lines = ["| variant | D | receptive field | map | L1 | sharpness | Laplacian ratio | FID | ms/step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rf = f"{r['receptive_field']}x{r['receptive_field']}" if r["receptive_field"] else "-"
        grid = f"{r['map']}x{r['map']}" if r["map"] else "-"
        lines.append(f"| {r['variant']} (seed {r['seed']}) | {r['discriminator']} | {rf} | {grid} | {r['l1']:.4f} | "
                     f"{r['sharpness']:.3f} | {r['laplacian_ratio']:.3f} | {r['fid']:.1f} | {r['ms_per_step']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["1", "16", "full", "l1"])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--l1", type=float, default=100.0, help="λ of the L1 term")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    parser.add_argument("--out", help="append one JSON line per run here")
    parser.add_argument("--save-outputs", help="folder for the translated test outputs (.pt)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    save = Path(args.save_outputs) if args.save_outputs else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
        torch.save(split_pairs(datasets.build("edges2mnist:part=test").data)[1], save / "targets.pt")
    for seed in args.seeds:
        for variant in args.variants:
            row, outputs = run_variant(variant, args.steps, seed, args.width, args.batch_size, args.l1, args.device)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
            if save:
                torch.save(outputs, save / f"{variant}-seed{seed}.pt")
    print(table(rows))


if __name__ == "__main__":
    main()
