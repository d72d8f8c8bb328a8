"""PacGAN: packing m samples per D input."""
from __future__ import annotations

import pytest
import torch
from _modes_util import one_thread  # noqa: F401  (autouse fixture)
from conftest import tiny_nets
from torch import nn

import gantricks as gt
from gantricks.build import build_gan
from gantricks.config import TrainConfig
from gantricks.errors import ConfigError
from gantricks.registry import tricks
from gantricks.tricks.pacgan import pack


@pytest.mark.parametrize("shape,m", [((12, 2), 2), ((12, 2), 3), ((8, 3, 4, 5), 4), ((6, 1, 7), 2)])
def test_pack_equals_concatenating_m_consecutive_samples(shape, m):
    x = torch.randn(*shape)
    expected = torch.stack([torch.cat([x[i * m + k] for k in range(m)], dim=0) for i in range(shape[0] // m)])
    assert torch.equal(pack(x, m), expected)
    assert pack(x, m).shape == (shape[0] // m, m * shape[1], *shape[2:])


def test_pack_refuses_a_batch_it_cannot_split():
    with pytest.raises(ConfigError, match="batch of 10 .* m=4"):
        pack(torch.randn(10, 2), 4)
    with pytest.raises(ConfigError, match="m must be >= 2"):
        tricks.build("pacgan:m=1")


@pytest.mark.parametrize("m", [2, 3, 4])
def test_built_in_mlp_d_takes_m_times_the_inputs(m):
    gan = build_gan(TrainConfig(tricks=(f"pacgan:m={m}",)), (2,))
    assert gan.D.features[0].linear.in_features == 2 * m
    real = torch.randn(12, 2)
    loss, logs = gan.discriminator_loss(gan.D, real, gan.generate(12).detach())
    assert torch.isfinite(loss)
    assert gan.D(pack(real, m)).shape == (12 // m,)


def test_a_users_d_must_take_packed_inputs():
    G, D = tiny_nets()
    with pytest.raises(ConfigError, match=r"packs of 2 samples, shape \(B/2, 4\)"):
        gt.GAN(G, D, z_dim=2, tricks=["pacgan"], data_shape=(2,))
    G, D = tiny_nets()
    D[0] = nn.Linear(4, 16)                     # a D built for packs of two 2-D samples
    gan = gt.GAN(G, D, z_dim=2, tricks=["pacgan"], data_shape=(2,))
    logs = gan.step(torch.randn(16, 2))
    assert torch.isfinite(torch.tensor(logs["d_loss"]))


def test_packing_lets_d_see_mode_collapse():
    """Fake packs: m copies of one ring mode (each sample distributed as a real one); real packs: m
    independent samples. Only the pack gives the collapse away."""
    torch.manual_seed(0)
    centers = torch.stack([torch.cos(torch.arange(8) * torch.pi / 4), torch.sin(torch.arange(8) * torch.pi / 4)], 1)
    real = lambda: centers[torch.randint(8, (32,))] + 0.05 * torch.randn(32, 2)                     # noqa: E731
    fake = lambda: centers[torch.randint(8, (16,))].repeat_interleave(2, 0) + 0.05 * torch.randn(32, 2)  # noqa: E731
    G, D = tiny_nets(width=32)
    D[0] = nn.Linear(4, 32)
    gan = gt.GAN(G, D, z_dim=2, tricks=["pacgan"], lr_d=3e-3)
    for _ in range(300):
        loss, _ = gan.discriminator_loss(gan.D, real(), fake())
        gan.update("D", loss)
    with torch.no_grad():
        real_in, fake_in = gan.d_inputs(real(), fake(), "D")
        accuracy = ((gan.D(real_in) > 0).float().mean() + (gan.D(fake_in) < 0).float().mean()) / 2
    assert accuracy > 0.85      # the best possible: real pairs share a mode 1/8 of the time -> 15/16


def test_registry_smoke():
    entry = tricks.get("pacgan")
    assert entry.paper and "D inputs" in entry.touches
    gan = build_gan(TrainConfig(tricks=("pacgan:m=3",), generator="mlp:width=32,depth=2",
                                discriminator="mlp:width=32,depth=2"), (2,))
    for _ in range(3):
        logs = gan.step(torch.randn(12, 2))
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
