"""Helpers for the tricks tests: tiny nets sized for any trick, a loss that suits a set of tricks."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import gantricks as gt
from gantricks.errors import ConfigError
from gantricks.registry import tricks as trick_registry
from gantricks.tricks.base import Trick

LOSSES = ("nonsaturating", "least-squares", "hinge", "wasserstein")   # first that suits wins
DATA_DIM, Z_DIM, BATCH = 2, 2, 24   # 24: divisible by PacGAN's usual pack sizes 2, 3, 4


IMAGE_SHAPE = (1, 8, 8)    # the samples of a GAN with a trick that transforms images (``needs_images``)


def sample_shape(specs=()) -> tuple[int, ...]:
    """Tiny images where a trick needs images, else 2-D points."""
    built = [s if isinstance(s, Trick) else trick_registry.build(s) for s in specs]
    return IMAGE_SHAPE if any(t.needs_images for t in built) else (DATA_DIM,)


def tiny_pair(specs=(), width: int = 16) -> tuple[nn.Module, nn.Module]:
    """A tiny MLP G and D (G's output shaped as 8x8 images where a trick needs images); D's input grows where
    a trick packs samples (``discriminator_input_shape``)."""
    shape = sample_shape(specs)
    d_shape = shape
    for spec in specs:
        trick = spec if isinstance(spec, Trick) else trick_registry.build(spec)
        d_shape = getattr(trick, "discriminator_input_shape", lambda s: s)(d_shape)
    G = nn.Sequential(nn.Linear(Z_DIM, width), nn.ReLU(), nn.Linear(width, math.prod(shape)), nn.Unflatten(1, shape))
    D = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(d_shape), width), nn.LeakyReLU(0.2),
                      nn.Linear(width, width), nn.LeakyReLU(0.2), nn.Linear(width, 1))
    return G, D


def make_gan(specs=(), loss: str = "nonsaturating", seed: int = 0, **kwargs) -> gt.GAN:
    torch.manual_seed(seed)
    G, D = tiny_pair(specs)
    return gt.GAN(G, D, z_dim=Z_DIM, loss=loss, tricks=list(specs), **kwargs)


def suitable_loss(specs) -> str:
    """The first loss of LOSSES with which each trick builds on its own."""
    for loss in LOSSES:
        try:
            for spec in specs:
                make_gan([spec], loss)
        except ConfigError:
            continue
        return loss
    raise AssertionError(f"no loss in {LOSSES} suits every one of {list(specs)}")


def ring_batch(n: int = BATCH, seed: int = 0) -> torch.Tensor:
    """A fixed batch of ring8 data."""
    sampler = gt.registry.datasets.build("ring8", seed=seed)
    return sampler(n)


def batch_for(specs=(), n: int = BATCH, seed: int = 0) -> torch.Tensor:
    """A fixed real batch of the samples :func:`tiny_pair` makes for ``specs``: ring8 points, or smooth
    8x8 images in [-1, 1] where a trick needs images."""
    if sample_shape(specs) == (DATA_DIM,):
        return ring_batch(n, seed)
    return torch.tanh(2 * torch.randn(n, *IMAGE_SHAPE, generator=torch.Generator().manual_seed(seed)))


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread while a tricks test runs: on nets this small, a second thread only
    adds synchronisation (measured: 3 ms vs 48 ms a step on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
