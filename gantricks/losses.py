"""Adversarial losses as pairs of pure functions over discriminator logits.

Every D-side function takes ``(real_logits, fake_logits, real_target, fake_target)``
and every G-side function takes ``(fake_logits, real_target)``. Logits may have any
shape ``(B, ...)`` (a PatchGAN map, several heads): the loss is the mean over all
elements. Targets are per-sample tensors of shape ``(B,)`` that broadcast over the
remaining dimensions; losses without labels (``uses_targets = False``) ignore them,
and tricks that change targets are refused for them when the GAN is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F
from torch import Tensor

from .registry import losses


def _expand(target: Tensor, logits: Tensor) -> Tensor:
    """Per-sample targets ``(B,)`` reshaped to broadcast over ``logits`` ``(B, ...)``."""
    if target.shape == logits.shape and target.dtype == logits.dtype:     # (B,) logits: as they are
        return target
    return target.reshape(target.shape[0], *([1] * (logits.dim() - 1))).to(logits.dtype).expand_as(logits)


def bce_with_targets(logits: Tensor, target: Tensor) -> Tensor:
    """Mean binary cross-entropy of sigmoid(logits) against (possibly soft) targets."""
    return F.binary_cross_entropy_with_logits(logits, _expand(target, logits))


# --- minimax (Goodfellow et al. 2014, Eq. 1) --------------------------------------------
def minimax_d(real_logits: Tensor, fake_logits: Tensor, real_target: Tensor, fake_target: Tensor) -> Tensor:
    """D maximises log D(x) + log(1 - D(G(z))) (Goodfellow et al. 2014, arXiv:1406.2661, Eq. 1): BCE against
    the real and fake targets."""
    return bce_with_targets(real_logits, real_target) + bce_with_targets(fake_logits, fake_target)


def minimax_g(fake_logits: Tensor, real_target: Tensor) -> Tensor:
    """G minimises E[log(1 - D(G(z)))] = -E[softplus(l)] (Goodfellow et al. 2014, arXiv:1406.2661, Eq. 1);
    saturates when D wins."""
    return -F.softplus(fake_logits).mean()


# --- non-saturating (Goodfellow et al. 2014, §3) ---------------------------------------
def nonsaturating_g(fake_logits: Tensor, real_target: Tensor) -> Tensor:
    """G minimises -E[log D(G(z))] (Goodfellow et al. 2014, arXiv:1406.2661, §3): BCE of fake logits against
    the real target."""
    return bce_with_targets(fake_logits, real_target)


# --- Wasserstein (Arjovsky et al. 2017, Alg. 1) ----------------------------------------
def wasserstein_d(real_logits: Tensor, fake_logits: Tensor, real_target: Tensor, fake_target: Tensor) -> Tensor:
    """The critic minimises E[f(G(z))] - E[f(x)] (Arjovsky et al. 2017, arXiv:1701.07875, Alg. 1)."""
    return fake_logits.mean() - real_logits.mean()


def wasserstein_g(fake_logits: Tensor, real_target: Tensor) -> Tensor:
    """G minimises -E[f(G(z))] (Arjovsky et al. 2017, arXiv:1701.07875, Alg. 1; also the hinge loss's G side,
    Miyato et al. 2018, arXiv:1802.05957, Eq. 17)."""
    return -fake_logits.mean()


# --- hinge (Lim & Ye 2017; Miyato et al. 2018, Eq. 16-17) ------------------------------
def hinge_d(real_logits: Tensor, fake_logits: Tensor, real_target: Tensor, fake_target: Tensor) -> Tensor:
    """D minimises E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017, arXiv:1705.02894;
    Miyato et al. 2018, arXiv:1802.05957, Eq. 16)."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


# --- least squares (Mao et al. 2017, Eq. 2 with a=0, b=c=1) ----------------------------
def least_squares_d(real_logits: Tensor, fake_logits: Tensor, real_target: Tensor, fake_target: Tensor) -> Tensor:
    """D minimises ½E[(D(x) - b)²] + ½E[(D(G(z)) - a)²], b and a the real and fake targets (Mao et al. 2017,
    arXiv:1611.04076, Eq. 2)."""
    return 0.5 * ((real_logits - _expand(real_target, real_logits)) ** 2).mean() + 0.5 * (
        (fake_logits - _expand(fake_target, fake_logits)) ** 2
    ).mean()


def least_squares_g(fake_logits: Tensor, real_target: Tensor) -> Tensor:
    """G minimises ½E[(D(G(z)) - c)²] with c the real target (Mao et al. 2017, arXiv:1611.04076, Eq. 2)."""
    return 0.5 * ((fake_logits - _expand(real_target, fake_logits)) ** 2).mean()


@dataclass(frozen=True)
class Loss:
    """A D-side and a G-side function, and whether they read targets (labels)."""

    name: str
    d: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
    g: Callable[[Tensor, Tensor], Tensor]
    uses_targets: bool


def _register(name: str, d, g, uses_targets: bool, paper: str, summary: str) -> None:
    losses.register(name, paper=paper, summary=summary)(lambda: Loss(name, d, g, uses_targets))


_register("minimax", minimax_d, minimax_g, True, "Goodfellow et al. 2014, arXiv:1406.2661, Eq. 1",
          "the original saturating game: G minimises log(1 - D(G(z)))")
_register("nonsaturating", minimax_d, nonsaturating_g, True, "Goodfellow et al. 2014, arXiv:1406.2661, §3",
          "G maximises log D(G(z)) instead: strong gradients early in training")
_register("wasserstein", wasserstein_d, wasserstein_g, False, "Arjovsky et al. 2017, arXiv:1701.07875, Alg. 1",
          "critic difference of means; pair with wgan-gp or spectral-norm for the Lipschitz bound")
_register("hinge", hinge_d, wasserstein_g, False, "Lim & Ye 2017, arXiv:1705.02894; Miyato et al. 2018",
          "margin loss for D, -D(G(z)) for G")
_register("least-squares", least_squares_d, least_squares_g, True, "Mao et al. 2017, arXiv:1611.04076, Eq. 2",
          "squared error to the targets (LSGAN, a=0, b=c=1)")


def get_loss(name: "str | Loss") -> Loss:
    """The registered loss called ``name`` (a :class:`Loss` passes through)."""
    return name if isinstance(name, Loss) else losses.build(name)


__all__ = ["Loss", "get_loss", "bce_with_targets"] + [n for n in dir() if n.endswith(("_d", "_g"))]
