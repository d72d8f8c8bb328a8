"""Precision, recall, density and coverage of generated samples in a feature space.

Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models", arXiv:2002.09797,
Eqs. 1-4 (precision and recall after Kynkäänniemi et al. 2019). With real features X (N of them),
fake features Y (M), and NND_k(x) the distance from x to its k-th nearest neighbour in its own set:

* precision = 1/M Σ_j 1[∃i: ‖Y_j − X_i‖ < NND_k(X_i)]
* recall    = 1/N Σ_i 1[∃j: ‖X_i − Y_j‖ < NND_k(Y_j)]
* density   = 1/(kM) Σ_j Σ_i 1[‖Y_j − X_i‖ < NND_k(X_i)]
* coverage  = 1/N Σ_i 1[min_j ‖X_i − Y_j‖ < NND_k(X_i)]

Strict inequalities, as in the authors' code. Distances are taken in float64, a block of rows at
a time, so memory stays at ``chunk`` × max(N, M) numbers, and exactly: from the differences, never
by ‖a‖² + ‖b‖² - 2a·b (``torch.cdist``'s shortcut for large sets), which rounds the real–real and
the real–fake distance of the same two points differently. With duplicated points (a fake that is
a copy of a real point lies exactly on real radii) that rounding decided which side of the radius
it fell: precision, density and coverage moved by up to 0.03 on 200 points (tests/test_metrics.py).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import metrics


def distances(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distances ``(len(a), len(b))`` from the differences: the same two points get the same
    distance whichever set and block they come in (Naeem et al. 2020, arXiv:2002.09797, compare radii)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def knn_radii(x: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row (itself excluded)."""
    x = x.flatten(1).double()
    return torch.cat([distances(x[i:i + chunk], x).kthvalue(k + 1, dim=1).values
                      for i in range(0, len(x), chunk)])


@metrics.register("prdc", paper="Naeem et al. 2020, arXiv:2002.09797",
                  summary="precision, recall, density, coverage by k-nearest neighbours in feature space")
def prdc(real: Tensor, fake: Tensor, k: int = 5, chunk: int = 1024) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` (M, d) against ``real`` (N, d)."""
    if real.dim() < 2 or fake.dim() < 2 or real[0].numel() != fake[0].numel():
        raise ConfigError(f"prdc needs real (N, d) and fake (M, d) features with the same d, got "
                          f"{tuple(real.shape)} and {tuple(fake.shape)}")
    if k < 1 or len(real) <= k or len(fake) <= k:
        raise ConfigError(f"prdc needs k >= 1 and more than k samples on each side; got k={k}, "
                          f"{len(real)} real and {len(fake)} fake")
    real, fake = real.flatten(1).double(), fake.flatten(1).double()
    r_real, r_fake = knn_radii(real, k, chunk), knn_radii(fake, k, chunk)
    precise = torch.zeros(len(fake), dtype=torch.bool, device=fake.device)
    inside = torch.zeros(len(fake), dtype=torch.float64, device=fake.device)
    recalled = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    nearest_fake = torch.full((len(real),), float("inf"), dtype=torch.float64, device=real.device)
    for j in range(0, len(fake), chunk):
        d = distances(fake[j:j + chunk], real)                       # (chunk, N)
        in_real_ball = d < r_real[None]
        precise[j:j + chunk] = in_real_ball.any(1)
        inside[j:j + chunk] = in_real_ball.sum(1)
        recalled |= (d < r_fake[j:j + chunk, None]).any(0)
        nearest_fake = torch.minimum(nearest_fake, d.min(0).values)
    return {"precision": float(precise.double().mean()), "recall": float(recalled.double().mean()),
            "density": float(inside.sum() / (k * len(fake))),
            "coverage": float((nearest_fake < r_real).double().mean())}
