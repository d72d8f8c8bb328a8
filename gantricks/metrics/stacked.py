"""Mode coverage on Stacked MNIST (Metz et al. 2016 §3.3; VEEGAN, Srivastava et al. 2017 §5.2).

A classifier labels each channel of a generated image with a digit; the digit triple
(d_0, d_1, d_2) is the mode, numbered 100·d_0 + 10·d_1 + d_2 (10^C modes for C channels).
``modes_covered`` counts the modes hit by at least one sample, and
``kl_to_uniform`` = KL(p_gen ‖ U) = Σ_m p_m log(M p_m), p_gen being the histogram of the
samples' modes and U uniform over the M modes (0 log 0 = 0): 0 for a perfectly balanced
generator, log(M / m) for one spread evenly over m modes.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import metrics


def mode_index(digits: Tensor, classes: int = 10) -> Tensor:
    """``(N, C)`` digit labels -> ``(N,)`` mode numbers, the labels read as a base-``classes`` number."""
    weights = classes ** torch.arange(digits.shape[1] - 1, -1, -1, device=digits.device)
    return (digits.long() * weights).sum(1)


def kl_to_uniform(counts: Tensor) -> float:
    """KL(p ‖ uniform) of the histogram ``counts`` over its ``len(counts)`` bins; ``inf`` when empty."""
    total = counts.sum()
    if total <= 0:
        return math.inf
    p = counts.double() / total
    nz = p > 0
    return float((p[nz] * torch.log(len(counts) * p[nz])).sum())


def mode_coverage(digits: Tensor, classes: int = 10) -> dict:
    """Modes covered and KL to uniform of samples whose channels were labelled ``digits`` (N, C)."""
    modes = classes ** digits.shape[1]
    counts = torch.bincount(mode_index(digits, classes).cpu(), minlength=modes)
    return {"modes_covered": int((counts > 0).sum()), "kl_to_uniform": kl_to_uniform(counts), "modes": modes,
            "samples": len(digits), "mode_counts": counts.tolist()}


@torch.no_grad()
def classify_channels(images: Tensor, classifier: nn.Module, batch_size: int = 1000) -> Tensor:
    """The classifier's label of each channel: ``(N, C, H, W)`` -> ``(N, C)``."""
    n, c = images.shape[:2]
    flat = images.reshape(n * c, 1, *images.shape[2:])
    labels = torch.cat([classifier(flat[i:i + batch_size]).argmax(1) for i in range(0, len(flat), batch_size)])
    return labels.view(n, c)


@metrics.register("stacked-mnist-modes", paper="Metz et al. 2016 §3.3; VEEGAN (Srivastava et al. 2017) §5.2",
                  summary="modes (digit triples) covered of 1,000 and KL(p_gen ‖ uniform), by an MNIST classifier")
def stacked_mnist_modes(samples: Tensor, classifier: nn.Module | None = None) -> dict:
    """Label each channel of ``samples`` ``(N, C, 28, 28)`` with ``classifier`` (default: the
    project's :func:`~gantricks.metrics.classifier.mnist_classifier`) and count the modes."""
    if samples.dim() != 4 or len(samples) == 0:
        raise ConfigError(f"stacked_mnist_modes needs samples (N, C, H, W), got {tuple(samples.shape)}")
    from .classifier import mnist_classifier, on_device

    classifier = on_device(classifier or mnist_classifier(), samples.device)
    return mode_coverage(classify_channels(samples, classifier))
