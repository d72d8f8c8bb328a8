"""Minibatch discrimination and minibatch standard deviation, and how they enter any D."""
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
from gantricks.tricks.minibatch_discrimination import MinibatchDiscrimination, minibatch_features
from gantricks.tricks.minibatch_stddev import MinibatchStdDev, minibatch_stddev


# --- the layers against references -----------------------------------------------------------
@pytest.mark.parametrize("include_self", [False, True])
def test_minibatch_features_equal_a_loop_over_sample_pairs(include_self):
    f = torch.randn(6, 4, dtype=torch.float64)
    T = torch.randn(4, 3, 2, dtype=torch.float64)
    M = [f[i] @ T.reshape(4, 6) for i in range(6)]
    M = [m.reshape(3, 2) for m in M]                  # M_i = f(x_i)·T, (B, C)
    expected = torch.zeros(6, 3, dtype=torch.float64)
    for i in range(6):
        for j in range(6):
            if i == j and not include_self:
                continue
            for b in range(3):
                expected[i, b] += torch.exp(-(M[i][b] - M[j][b]).abs().sum())
    torch.testing.assert_close(minibatch_features(f, T, include_self), expected)


def test_minibatch_feature_of_one_sample_depends_on_the_others():
    layer = MinibatchDiscrimination(4, kernels=5, kernel_dim=3, init_std=0.3)
    x = torch.randn(8, 4)
    out = layer(x)
    assert out.shape == (8, 4 + 5)
    torch.testing.assert_close(out[:, :4], x)          # the features pass through
    moved = x.clone()
    moved[3] += 0.5                                     # change another sample
    assert not torch.allclose(layer(moved)[0, 4:], out[0, 4:])
    assert torch.equal(layer(x[[0]])[0, 4:], torch.zeros(5))   # alone in its batch: no other sample is close


@pytest.mark.parametrize("layer", [MinibatchDiscrimination(4, 5, 3, init_std=0.3), MinibatchStdDev(2)])
def test_layers_can_be_differentiated_twice(layer):
    """Gradient penalties (wgan-gp, dragan, r1) and unrolled D steps take the gradient of a gradient."""
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    layer = layer.double()
    grad, = torch.autograd.grad(layer(x)[:, 4:].pow(2).sum(), x, create_graph=True)
    assert torch.autograd.gradcheck(lambda v: torch.autograd.grad(layer(v)[:, 4:].pow(2).sum(), v,
                                                                  create_graph=True)[0], (x,))
    assert grad.requires_grad


def stddev_reference(x: torch.Tensor, group: int, features: int) -> torch.Tensor:
    """Karras et al.: per-group population std of every feature and location, averaged, as extra maps."""
    n, c = x.shape[:2]
    m = n // group
    extra = torch.empty(n, features, *x.shape[2:], dtype=x.dtype)
    for k in range(m):                                 # samples k, k+m, k+2m, ... form a group
        members = [k + g * m for g in range(group)]
        for f in range(features):
            chunk = x[members][:, f * (c // features):(f + 1) * (c // features)]
            value = (chunk.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
            extra[members, f] = value
    return torch.cat([x, extra], dim=1)


@pytest.mark.parametrize("shape,group,features", [((8, 6, 3, 3), 4, 1), ((8, 6, 3, 3), 2, 3), ((12, 5), 4, 1),
                                                  ((3, 4, 2, 2), 4, 2)])
def test_minibatch_stddev_equals_the_reference_formula(shape, group, features):
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(minibatch_stddev(x, group, features), stddev_reference(x, min(group, shape[0]),
                                                                                       features))


def test_minibatch_stddev_is_zero_for_a_collapsed_batch_and_refuses_ragged_groups():
    x = torch.randn(1, 3, 4, 4).expand(8, 3, 4, 4)
    torch.testing.assert_close(minibatch_stddev(x)[:, 3], torch.full((8, 4, 4), 1e-4))
    with pytest.raises(ConfigError, match="groups of 4"):
        minibatch_stddev(torch.randn(10, 3))


# --- insertion into the built-in and a user's D ----------------------------------------------
def test_built_in_d_gets_the_layer_before_its_head_with_its_weights_kept():
    torch.manual_seed(0)
    plain = build_gan(TrainConfig(), (2,))
    torch.manual_seed(0)
    gan = build_gan(TrainConfig(tricks=("minibatch-discrimination:kernels=7",)), (2,))
    head = gan.D.head
    assert isinstance(head[0], MinibatchDiscrimination) and head[1].in_features == 200 + 7
    torch.testing.assert_close(head[1].weight[:, :200], plain.D.head.weight)
    torch.testing.assert_close(head[1].bias, plain.D.head.bias)
    assert any(p is head[0].T for p in gan.optimizers["D"].param_groups[0]["params"])
    assert gan.D(torch.randn(10, 2)).shape == (10,)


def user_d() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 8, 4, 2, 1),
                         nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.LeakyReLU(0.2),
                         nn.Linear(16, 1))


def test_named_layer_of_a_users_d():
    G = nn.Sequential(nn.Linear(4, 3 * 8 * 8), nn.Unflatten(1, (3, 8, 8)))
    gan = gt.GAN(G, user_d(), z_dim=4, tricks=["minibatch-stddev:layer=2", "minibatch-discrimination:layer=5"])
    assert gan.D[2][1].in_channels == 9 and gan.D[5][1].in_features == 128 + 100
    gan.step(torch.randn(8, 3, 8, 8))
    # default: the last Linear
    gan = gt.GAN(G, user_d(), z_dim=4, tricks=["minibatch-discrimination:kernels=3"])
    assert gan.D[7][1].in_features == 16 + 3


def test_bad_layers_are_refused_with_the_choices():
    G = nn.Sequential(nn.Linear(4, 3 * 8 * 8), nn.Unflatten(1, (3, 8, 8)))
    with pytest.raises(ConfigError, match="no layer 'nope'.*0, 2, 5, 7"):
        gt.GAN(G, user_d(), z_dim=4, tricks=["minibatch-stddev:layer=nope"])
    with pytest.raises(ConfigError, match="flat features"):
        gt.GAN(G, user_d(), z_dim=4, tricks=["minibatch-discrimination:layer=2"])
    with pytest.raises(ConfigError, match="LeakyReLU"):
        gt.GAN(G, user_d(), z_dim=4, tricks=["minibatch-stddev:layer=1"])
    with pytest.raises(ConfigError, match="before that trick"):
        gt.GAN(*tiny_nets(), z_dim=2, tricks=["spectral-norm", "minibatch-discrimination"])
    gt.GAN(*tiny_nets(), z_dim=2, tricks=["minibatch-discrimination", "spectral-norm"])


# --- what they are for: telling a collapsed batch from a diverse one ---------------------------
def collapsed_vs_diverse_accuracy(trick: str | None, steps: int = 150) -> float:
    """Real batches: 16 i.i.d. ring samples. Fake batches: 16 copies of one ring mode, the mode drawn at
    random per batch. Each fake *sample* is distributed exactly like a real one, so a D that looks at
    one sample at a time cannot beat 50 %; only the batch gives the collapse away."""
    torch.manual_seed(0)
    centers = torch.stack([torch.cos(torch.arange(8) * torch.pi / 4), torch.sin(torch.arange(8) * torch.pi / 4)], 1)
    real = lambda: centers[torch.randint(8, (16,))] + 0.05 * torch.randn(16, 2)              # noqa: E731
    fake = lambda: centers[torch.randint(8, ())].expand(16, 2) + 0.05 * torch.randn(16, 2)   # noqa: E731
    _, D = tiny_nets(width=32)
    gan = gt.GAN(nn.Linear(2, 2), D, z_dim=2, tricks=[trick] if trick else [], lr_d=3e-3)
    for _ in range(steps):
        loss, _ = gan.discriminator_loss(gan.D, real(), fake())
        gan.update("D", loss)
    with torch.no_grad():
        right = [(gan.D(real()) > 0).float().mean() for _ in range(20)] + \
                [(gan.D(fake()) < 0).float().mean() for _ in range(20)]
    return float(torch.stack(right).mean())


def test_a_per_sample_d_cannot_see_mode_collapse():
    assert collapsed_vs_diverse_accuracy(None, 300) < 0.7


@pytest.mark.parametrize("trick,steps", [("minibatch-discrimination", 150), ("minibatch-stddev", 300)])
def test_batch_features_let_d_see_mode_collapse(trick, steps):
    assert collapsed_vs_diverse_accuracy(trick, steps) > 0.9


# --- through the registry --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["minibatch-discrimination", "minibatch-stddev"])
def test_registry_smoke(name):
    assert tricks.get(name).paper and tricks.get(name).touches == "D architecture"
    G, D = tiny_nets()
    gan = gt.GAN(G, D, z_dim=2, tricks=[name])
    for _ in range(3):
        logs = gan.step(torch.randn(16, 2))
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    with pytest.raises(ConfigError):
        tricks.build(name + (":kernels=0" if "discrimination" in name else ":group_size=0"))
