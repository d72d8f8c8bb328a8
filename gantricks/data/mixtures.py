"""The 2D Gaussian mixtures of the mode-collapse literature (PROTOCOLS.md).

``ring8``: 8 modes at (cos 2πk/8, sin 2πk/8), k = 0..7, std 0.01.
``grid25``: 25 modes at {-4, -2, 0, 2, 4}², std 0.05.
Angles are 2πk/8, not ``linspace(0, 2π, 8)``, which would put the first and the
last mode on the same point and leave 7 distinct modes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..registry import datasets
from .sources import FixedSet, Sampler


def ring_centers(modes: int = 8, radius: float = 1.0) -> Tensor:
    k = torch.arange(modes, dtype=torch.float64)
    angle = 2 * math.pi * k / modes
    return (radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)).float()


def grid_centers(side: int = 5, spacing: float = 2.0) -> Tensor:
    ticks = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    xx, yy = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


@dataclass
class Mixture(Sampler):
    """An equal-weight isotropic Gaussian mixture; an endless sampler with known modes."""

    centers: Tensor
    std: float
    generator: torch.Generator | None = None

    def __post_init__(self):
        if self.std <= 0:
            from ..errors import ConfigError
            raise ConfigError(f"mixture std must be positive, got {self.std}")
        if self.generator is None:
            self.generator = torch.Generator().manual_seed(0)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.centers.shape[1],)

    @property
    def num_classes(self) -> int:      # labelled: a point's label is the index of its mode
        return len(self.centers)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.sample_labelled(n, generator)[0]

    def sample_labelled(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` points and the index of the mode each was drawn from."""
        g = generator or self.generator
        idx = torch.randint(len(self.centers), (n,), generator=g)
        return self.centers[idx] + self.std * torch.randn(n, self.centers.shape[1], generator=g), idx

    def __call__(self, batch_size: int) -> Tensor:
        return self.sample(batch_size)

    def labelled(self, batch_size: int) -> tuple[Tensor, Tensor]:
        return self.sample_labelled(batch_size)

    def reference(self, n: int) -> Tensor:
        return self.sample(n, torch.Generator().manual_seed(0))

    def labelled_reference(self, n: int) -> tuple[Tensor, Tensor]:
        return self.sample_labelled(n, torch.Generator().manual_seed(0))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _mixture(centers: Tensor, std: float, seed: int, train_points: int) -> Sampler:
    gen = torch.Generator().manual_seed(seed)
    mix = Mixture(centers, std, gen)
    if train_points <= 0:
        return mix
    points, modes = mix.sample_labelled(train_points)
    fixed = FixedSet(points, generator=gen, centers=centers, std=std, labels=modes)
    fixed.num_classes = len(centers)      # every mode a class, even one no training point fell in
    return fixed


@datasets.register("ring8", paper="Metz et al. 2016; PacGAN (Lin et al. 2018) config",
                   summary="8 Gaussians on the unit circle, std 0.01")
def ring8(seed: int = 0, train_points: int = 100_000, modes: int = 8, radius: float = 1.0,
          std: float = 0.01) -> Sampler:
    """Ring of Gaussians; ``train_points`` > 0 fixes a training set (PacGAN: 100k), 0 samples endlessly."""
    return _mixture(ring_centers(modes, radius), std, seed, train_points)


@datasets.register("grid25", paper="Dumoulin et al. 2017 (ALI); PacGAN (Lin et al. 2018) config",
                   summary="5x5 grid of Gaussians at {-4..4}^2, std 0.05")
def grid25(seed: int = 0, train_points: int = 100_000, side: int = 5, spacing: float = 2.0,
           std: float = 0.05) -> Sampler:
    """Grid of Gaussians; ``train_points`` > 0 fixes a training set (PacGAN: 100k), 0 samples endlessly."""
    return _mixture(grid_centers(side, spacing), std, seed, train_points)
