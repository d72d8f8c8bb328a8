"""Minibatch discrimination and minibatch standard deviation, and how they enter any D."""
from __future__ import annotations

import copy

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
from gantricks.tricks.minibatch_discrimination import (MinibatchDiscrimination, kernel_closeness, minibatch_features,
                                                       nearest_neighbour_distances)
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


def plain_closeness(M: torch.Tensor, include_self: bool) -> torch.Tensor:
    """o for M (N, B, C) written plainly, (N, N, B, C) differences and all, for autograd to differentiate."""
    o = torch.exp(-(M[:, None] - M[None, :]).abs().sum(dim=3)).sum(dim=1)
    return o if include_self else o - 1


@pytest.mark.parametrize("include_self", [False, True])
def test_kernel_closeness_gradients_equal_autograd_of_the_plain_formula(include_self):
    """The custom backward (and the differentiable one taken under create_graph) against autograd."""
    M = torch.randn(7, 3, 4, dtype=torch.float64, requires_grad=True)
    g, h = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(kernel_closeness(M, include_self), plain_closeness(M, include_self))
    first = torch.autograd.grad((kernel_closeness(M, include_self) * g).sum(), M)[0]
    expected = torch.autograd.grad((plain_closeness(M, include_self) * g).sum(), M, create_graph=True)[0]
    torch.testing.assert_close(first, expected.detach())
    with_graph = torch.autograd.grad((kernel_closeness(M, include_self) * g).sum(), M, create_graph=True)[0]
    torch.testing.assert_close(with_graph, expected)
    torch.testing.assert_close(torch.autograd.grad((with_graph * h).sum(), M)[0],
                               torch.autograd.grad((expected * h).sum(), M)[0])
    assert torch.autograd.gradgradcheck(lambda v: kernel_closeness(v, include_self), (M,))


def test_kernel_closeness_third_derivative_equals_autograd_of_the_plain_formula():
    """The double backward's own backward falls back on autograd through the plain gradient formula."""
    M = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    g, h = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, 3, dtype=torch.float64)

    def third(closeness):
        first = torch.autograd.grad((closeness(M) * g).sum(), M, create_graph=True)[0]
        second = torch.autograd.grad((first * h).sum(), M, create_graph=True)[0]
        return torch.autograd.grad(second.pow(2).sum(), M)[0]
    torch.testing.assert_close(third(kernel_closeness), third(lambda m: plain_closeness(m, False)))


def test_kernel_closeness_of_duplicates_and_of_far_apart_samples():
    """A collapsed batch: every pair at distance 0 (o = N - 1, no gradient through the kinks, as autograd's
    abs); pairs far apart: o = 0 up to the kernel's floor (5e-20 a pair), float32 without NaNs."""
    M = torch.randn(1, 4, 5).expand(10, 4, 5).clone().requires_grad_()
    o = kernel_closeness(M)
    torch.testing.assert_close(o, torch.full((10, 4), 9.0))
    assert torch.equal(torch.autograd.grad(o.sum(), M)[0], torch.zeros_like(M))
    far = (torch.randn(10, 4, 5) * 1e4).requires_grad_()
    o = kernel_closeness(far)
    assert o.abs().max() < 1e-17 and torch.isfinite(torch.autograd.grad(o.sum(), far)[0]).all()


@pytest.mark.parametrize("form", ["authors", "simple"])
def test_minibatch_feature_of_one_sample_depends_on_the_others(form):
    layer = MinibatchDiscrimination(4, kernels=5, kernel_dim=3, init_std=0.3, form=form)
    x = torch.randn(8, 4)
    out = layer(x)
    assert out.shape == (8, 4 + 5)
    torch.testing.assert_close(out[:, :4], x)          # the features pass through
    moved = x.clone()
    moved[3] += 0.5                                     # change another sample
    assert not torch.allclose(layer(moved)[0, 4:], out[0, 4:])
    alone = torch.zeros(5) if form == "simple" else layer.bias   # no other sample is close: o = 0
    assert torch.equal(layer(x[[0]])[0, 4:], alone)


@pytest.mark.parametrize("layer", [MinibatchDiscrimination(4, 5, 3, init_std=0.3, form="simple"),
                                   MinibatchDiscrimination(4, 5, 3), MinibatchStdDev(2)])
def test_layers_can_be_differentiated_twice(layer):
    """Gradient penalties (wgan-gp, dragan, r1) and unrolled D steps take the gradient of a gradient."""
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    layer = layer.double()
    grad, = torch.autograd.grad(layer(x)[:, 4:].pow(2).sum(), x, create_graph=True)
    assert torch.autograd.gradcheck(lambda v: torch.autograd.grad(layer(v)[:, 4:].pow(2).sum(), v,
                                                                  create_graph=True)[0], (x,))
    assert grad.requires_grad


# --- the authors' form: weight norm and the data-dependent initialisation ----------------------
def ring_batch_features(form: str) -> tuple[nn.Module, torch.Tensor]:
    """The fast protocol's D with the trick (as built), and the features its head receives for a ring8 batch."""
    from gantricks.bench import PROTOCOLS
    config = TrainConfig(**PROTOCOLS["fast"], data="ring8", tricks=(f"minibatch-discrimination:form={form}",))
    gan = build_gan(config, (2,))
    layer, seen = gan.D.head[0], {}
    hook = layer.register_forward_hook(lambda module, args, out: seen.update(x=args[0].detach()))
    gan.D.train()
    gan.D(gt.data.ring_centers(8, 1.0)[torch.randint(8, (100,))] + 0.01 * torch.randn(100, 2))
    hook.remove()
    return layer, seen["x"]


def test_data_dependent_init_puts_nearest_neighbours_at_distance_2_and_centres_the_feature():
    layer, x = ring_batch_features("authors")
    assert bool(layer.initialized)
    T = layer.projection().detach()
    M = (x @ T.reshape(x.shape[1], -1)).reshape(100, *T.shape[1:])
    torch.testing.assert_close(nearest_neighbour_distances(M).mean(dim=0), torch.full((T.shape[1],), 2.0),
                               rtol=1e-4, atol=0)
    o = minibatch_features(x, T)
    assert o.mean() < 5 and o.max() < 0.2 * 99          # far from its maximum, 99 for a batch of 100
    with torch.no_grad():
        out = layer(x)[:, x.shape[1]:]
    torch.testing.assert_close(out.mean(dim=0), torch.zeros(T.shape[1]), atol=1e-4, rtol=0)   # o + bias centred
    # the old form at its initialisation, for comparison: every sample is "close" to every other one
    simple, x = ring_batch_features("simple")
    assert minibatch_features(x, simple.T.detach()).mean() > 0.8 * 99


def test_init_happens_once_is_saved_and_a_reload_does_not_redo_it(monkeypatch):
    x, other = torch.randn(16, 6), torch.randn(16, 6) * 3
    layer = MinibatchDiscrimination(6, 4, 3)
    layer.eval()
    layer(x)
    assert not bool(layer.initialized)                # no initialisation outside training
    layer.train()
    layer(x)
    assert bool(layer.initialized) and layer.state_dict()["initialized"]
    scale, bias = layer.log_scale.detach().clone(), layer.bias.detach().clone()
    layer(other)                                      # a second batch changes nothing
    assert torch.equal(layer.log_scale, scale) and torch.equal(layer.bias, bias)

    resumed = MinibatchDiscrimination(6, 4, 3)
    resumed.load_state_dict(layer.state_dict())
    calls = []
    monkeypatch.setattr(MinibatchDiscrimination, "initialize", lambda self, x: calls.append(x))
    torch.testing.assert_close(resumed(other), layer(other))
    assert calls == []
    # loading a state saved before any initialisation: the next training forward initialises
    resumed.load_state_dict(MinibatchDiscrimination(6, 4, 3).state_dict())
    resumed(other)
    assert len(calls) == 1


def test_a_state_of_the_other_form_is_refused_with_the_option_to_use():
    simple, authors = MinibatchDiscrimination(6, 4, 3, form="simple"), MinibatchDiscrimination(6, 4, 3)
    with pytest.raises(RuntimeError, match="saved with form=simple.*minibatch-discrimination:form=simple"):
        authors.load_state_dict(simple.state_dict())
    with pytest.raises(RuntimeError, match="saved with form=authors"):
        simple.load_state_dict(authors.state_dict())


def test_a_resumed_gan_keeps_its_initialisation_and_steps_like_the_original():
    """gan.state_dict -> a fresh GAN: the flag comes along, the first step does not re-initialise,
    and the resumed GAN takes the same step as the original."""
    def make():
        torch.manual_seed(1)
        return gt.GAN(*tiny_nets(width=16), z_dim=2, tricks=["minibatch-discrimination:kernels=6"])
    gan, data = make(), [torch.randn(16, 2) for _ in range(3)]
    gan.step(data[0])
    state = copy.deepcopy(gan.state_dict())          # (it shares the live tensors)
    for x in data[1:]:
        gan.step(x)
    resumed = make()
    assert not bool(resumed.D[4][0].initialized)
    resumed.load_state_dict(state)                    # and the RNG state of the save
    assert bool(resumed.D[4][0].initialized)
    for x in data[1:]:
        resumed.step(x)
    for (name, p), q in zip(gan.D.named_parameters(), resumed.D.parameters()):
        torch.testing.assert_close(p, q, msg=name)


def test_unrolled_scheme_with_the_authors_form():
    """The first D update initialises the real D; the unroll's functional copies of D never do."""
    G, D = tiny_nets(width=16)
    gan = gt.GAN(G, D, z_dim=2, tricks=["minibatch-discrimination:kernels=6"], scheme="unrolled:k=2")
    layer = gan.D[4][0]
    seen = []
    original = MinibatchDiscrimination.initialize
    MinibatchDiscrimination.initialize = lambda self, x: (seen.append(isinstance(self.V, nn.Parameter)),
                                                          original(self, x))
    try:
        for _ in range(3):
            logs = gan.step(torch.randn(16, 2))
    finally:
        MinibatchDiscrimination.initialize = original
    assert seen == [True] and bool(layer.initialized)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())


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
    params = gan.optimizers["D"].param_groups[0]["params"]
    assert all(any(p is q for q in params) for p in (head[0].V, head[0].log_scale, head[0].bias))
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
    if "discrimination" in name:
        with pytest.raises(ConfigError, match="authors, simple"):
            tricks.build(name + ":form=paper")
