"""Minibatch standard deviation (Karras et al. 2018, arXiv:1710.10196, §3).

"We first compute the standard deviation for each feature in each spatial location
over the minibatch. We then average these estimates over all features and spatial
locations to arrive at a single value. We replicate the value and concatenate it to
all spatial locations and over the minibatch, yielding one additional (constant)
feature map." The authors' code computes it over groups of ``group_size`` samples
(default 4) and can split the channels into ``features`` groups, each giving one
extra map. As in that code, the batch is reshaped to ``(group_size, N/group_size, ...)``,
so the samples n, n + N/G, n + 2N/G, ... form one group; the standard deviation is
the population one (divide by G) with 1e-8 under the square root.

Works on conv features ``(N, C, *S)`` (one channel per extra feature) and on flat
features ``(N, F)`` (one column per extra feature).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .base import D_ARCH, Trick
from .common import register_trick, require
from .insert_features import insert_before


def minibatch_stddev(x: Tensor, group_size: int = 4, features: int = 1, eps: float = 1e-8) -> Tensor:
    """``x`` ``(N, C, *S)`` or ``(N, C)`` with ``features`` maps (columns) of group std appended (Karras et al.
    2018, arXiv:1710.10196, §3)."""
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    g = min(group_size, n)
    if n % g:
        raise ConfigError(f"minibatch-stddev: a batch of {n} does not split into groups of {g}; "
                          f"use a batch size divisible by group_size or change group_size")
    if c % features:
        raise ConfigError(f"minibatch-stddev: {c} channels do not split into {features} features")
    y = x.reshape(g, n // g, features, c // features, *spatial)
    std = (y - y.mean(dim=0)).pow(2).mean(dim=0).add(eps).sqrt()   # (n/g, features, c/features, *S)
    stat = std.flatten(2).mean(dim=2)                               # (n/g, features)
    stat = stat.repeat(g, 1).reshape(n, features, *([1] * len(spatial))).expand(n, features, *spatial)
    return torch.cat([x, stat.to(x.dtype)], dim=1)


class MinibatchStdDev(nn.Module):
    """Minibatch standard deviation layer, ``(N, C, ...) -> (N, C + features, ...)`` (Karras et al. 2018,
    arXiv:1710.10196, §3)."""

    def __init__(self, group_size: int = 4, features: int = 1):
        super().__init__()
        self.group_size, self.features = group_size, features

    def forward(self, x: Tensor) -> Tensor:
        return minibatch_stddev(x, self.group_size, self.features)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, features={self.features}"


@register_trick("minibatch-stddev", paper="Karras et al. 2018, arXiv:1710.10196, §3",
                summary="append the batch's mean feature standard deviation as an extra feature map (column)")
class MinibatchStdDevTrick(Trick):
    """Insert a minibatch-stddev layer in front of D's layer ``layer`` (default: its head).

    Args:
        group_size: samples per group (the batch size must be divisible by it, or smaller).
        features: number of channel groups, one extra feature each.
        layer: name (from ``D.named_modules()``) of the Linear or Conv layer that receives the features.
    """

    touches = (D_ARCH,)

    def __init__(self, group_size: int = 4, features: int = 1, layer: str = ""):
        require(group_size >= 1, f"minibatch-stddev: group_size must be >= 1, got {group_size}")
        require(features >= 1, f"minibatch-stddev: features must be >= 1, got {features}")
        self.group_size, self.features, self.layer = group_size, features, layer

    def setup(self, gan) -> None:
        def make(name: str, target: nn.Module) -> tuple[nn.Module, int]:
            width = target.in_features if isinstance(target, nn.Linear) else target.in_channels
            require(width % self.features == 0, f"minibatch-stddev: layer {name!r} takes {width} inputs, "
                    f"which do not split into features={self.features} groups")
            return MinibatchStdDev(self.group_size, self.features), self.features
        insert_before(gan.D, self.layer, make, self.name)
