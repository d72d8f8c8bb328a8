"""Minibatch discrimination (Salimans et al. 2016, arXiv:1606.03498, §3.2).

For features f(x_i) ∈ R^A of the N samples of a batch and a learned tensor
T ∈ R^{A×B×C}::

    M_i = f(x_i) · T ∈ R^{B×C}
    c_b(x_i, x_j) = exp(-‖M_{i,b} - M_{j,b}‖_L1)
    o(x_i)_b = Σ_j c_b(x_i, x_j)                              (Eq. in §3.2)

and ``[f(x_i), o(x_i)]`` goes on to D's next layer, so D can see how close a sample
is to the rest of its batch: a collapsed generator's batch is easy to spot.

The paper's sum runs over all j, so each o(x_i)_b includes c_b(x_i, x_i) = 1, a
constant. The authors' code (improved-gan, ``MinibatchLayer``) leaves j = i out by
adding a large number to the diagonal distances; we follow the code by default
(``include_self=False``: o counts the *other* samples) and ``include_self=True``
gives the paper's formula. T starts N(0, 0.05²) as in that code.

Cost: every D call builds the (B, C, N, N) differences, so time and memory grow as N²·B·C;
with the defaults, batch 100 and PacGAN's nets a step costs about 5x a plain one on a CPU
(140 against 27 ms, one thread).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import D_ARCH, Trick
from .common import register_trick, require
from .insert_features import insert_before


def minibatch_features(features: Tensor, T: Tensor, include_self: bool = False) -> Tensor:
    """o(x) ``(N, B)`` for features ``(N, A)`` and T ``(A, B, C)``."""
    M = torch.einsum("na,abc->bcn", features, T)       # samples last: the (N, N) blocks are contiguous
    # ‖M_{i,b} - M_{j,b}‖_L1 as (B, N, N); written out rather than torch.cdist, whose backward has no
    # derivative of its own (gradient penalties and unrolled D steps differentiate D twice)
    distance = (M[..., :, None] - M[..., None, :]).abs().sum(dim=1)
    closeness = torch.exp(-distance).sum(dim=2).T       # (N, B): Σ_j c_b(x_i, x_j)
    return closeness if include_self else closeness - 1.0   # c_b(x_i, x_i) = exp(0) = 1 exactly


class MinibatchDiscrimination(nn.Module):
    """``(N, A) -> (N, A + B)``: the features with o(x) appended."""

    def __init__(self, in_features: int, kernels: int = 100, kernel_dim: int = 5, include_self: bool = False,
                 init_std: float = 0.05):
        super().__init__()
        self.include_self = include_self
        self.T = nn.Parameter(torch.randn(in_features, kernels, kernel_dim) * init_std)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, minibatch_features(x, self.T, self.include_self)], dim=1)


@register_trick("minibatch-discrimination", paper="Salimans et al. 2016, arXiv:1606.03498, §3.2",
                summary="D sees how close each sample is to the others of its batch (o(x) appended to its features)")
class MinibatchDiscriminationTrick(Trick):
    """Insert the minibatch-discrimination layer in front of D's layer ``layer`` (default: its head).

    Args:
        kernels: B, the number of closeness features appended.
        kernel_dim: C, the size of each kernel's projection.
        layer: name (from ``D.named_modules()``) of the Linear layer that receives the features.
        include_self: count c(x_i, x_i) = 1 in the sum, as the paper's formula (default: as its code).
    """

    touches = (D_ARCH,)

    def __init__(self, kernels: int = 100, kernel_dim: int = 5, layer: str = "", include_self: bool = False):
        require(kernels >= 1 and kernel_dim >= 1,
                f"minibatch-discrimination: kernels and kernel_dim must be >= 1, got {kernels}, {kernel_dim}")
        self.kernels, self.kernel_dim, self.layer, self.include_self = kernels, kernel_dim, layer, include_self

    def setup(self, gan) -> None:
        def make(name: str, target: nn.Module) -> tuple[nn.Module, int]:
            require(isinstance(target, nn.Linear), f"minibatch-discrimination works on flat features; layer "
                    f"{name!r} is a {type(target).__name__}: name a Linear layer with layer=")
            return MinibatchDiscrimination(target.in_features, self.kernels, self.kernel_dim,
                                           self.include_self), self.kernels
        insert_before(gan.D, self.layer, make, self.name)
