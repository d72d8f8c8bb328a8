"""Mode coverage of samples from a Gaussian mixture (PacGAN / VEEGAN protocol)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import metrics


@metrics.register("mixture-coverage", paper="PacGAN (Lin et al. 2018) §5.1; VEEGAN (Srivastava et al. 2017)",
                  summary="modes covered, % high-quality samples, reverse KL to uniform over modes")
def mixture_coverage(samples: Tensor, centers: Tensor, std: "float | Tensor", quality_stds: float = 3.0
                     ) -> dict[str, float]:
    """Mode coverage of ``samples`` (N, d) from a mixture with ``centers`` (K, d) and per-mode ``std``.

    Definitions (PROTOCOLS.md):

    * each sample is assigned to its nearest centre (Euclidean distance);
    * it is **high quality** when that distance is below ``quality_stds`` (3) times the
      std of that mode;
    * a mode is **covered** when at least one high-quality sample is assigned to it;
      ``modes_covered`` counts them (0..K);
    * ``high_quality_pct`` = 100 · (high-quality samples) / N;
    * ``reverse_kl`` = KL(p_gen ‖ U) = Σ_k p_k log(K p_k), where p_k is the fraction of
      high-quality samples assigned to mode k and U is uniform over the K modes
      (0 log 0 = 0). It is 0 for a perfectly balanced sampler and log(K/m) when the
      high-quality samples fall evenly on m modes. With no high-quality sample p_gen
      is undefined and ``reverse_kl`` is reported as ``inf``.

    This is a true KL divergence, not the JSD that PacGAN's code logs.
    Also returned: ``modes`` (K), ``samples`` (N), ``mode_counts`` (list of K ints) and
    ``nearest_counts``: every finite sample by its nearest centre, sharp or not (K ints). These tell a
    G spread thinly over every mode (few sharp samples, an even ``nearest_counts``) from one whose
    samples sit on a few modes (:func:`gantricks.collapse.collapsed_mass`).
    """
    samples = torch.as_tensor(samples).detach().to("cpu", torch.float64)
    centers = torch.as_tensor(centers).detach().to("cpu", torch.float64)
    if samples.dim() != 2 or centers.dim() != 2 or samples.shape[1] != centers.shape[1]:
        raise ConfigError(f"samples (N, d) and centers (K, d) must share d; got {tuple(samples.shape)} "
                          f"and {tuple(centers.shape)}")
    if len(samples) == 0:
        raise ConfigError("mixture_coverage needs at least one sample")
    k = len(centers)
    std_t = torch.as_tensor(std, dtype=torch.float64).expand(k)
    if not (std_t > 0).all():
        raise ConfigError("mode std must be positive")
    finite = torch.isfinite(samples).all(dim=1)
    dist = torch.cdist(torch.where(finite[:, None], samples, torch.zeros_like(samples)), centers)
    nearest_dist, nearest = dist.min(dim=1)
    high_quality = finite & (nearest_dist < quality_stds * std_t[nearest])
    counts = torch.bincount(nearest[high_quality], minlength=k)
    n_hq = int(counts.sum())
    return {"modes_covered": int((counts > 0).sum()), "high_quality_pct": 100.0 * n_hq / len(samples),
            "reverse_kl": reverse_kl(counts), "modes": k, "samples": len(samples), "mode_counts": counts.tolist(),
            "nearest_counts": torch.bincount(nearest[finite], minlength=k).tolist()}


def reverse_kl(mode_counts: "Tensor | Sequence[int]") -> float:
    """KL(p ‖ U) = Σ_k p_k log(K p_k) of the histogram ``mode_counts`` over K modes (0 log 0 = 0);
    ``inf`` for an empty histogram, where p is undefined."""
    counts = torch.as_tensor(mode_counts, dtype=torch.float64)
    total = float(counts.sum())
    if total == 0:
        return math.inf
    p = counts / total
    nz = p > 0
    return float((p[nz] * torch.log(len(counts) * p[nz])).sum())
