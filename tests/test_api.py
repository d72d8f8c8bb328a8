"""The Python API on the user's own models and data."""
import pytest
import torch
from conftest import tiny_nets
from torch import nn

import gantricks as gt
from gantricks.data import FixedSet, as_sampler
from gantricks.errors import ConfigError


def test_gan_on_users_models_with_a_dataloader():
    G, D = tiny_nets()
    gan = gt.GAN(generator=G, discriminator=D, z_dim=2, loss="hinge", scheme="standard", lr_g=2e-4, lr_d=1e-4)
    data = torch.utils.data.TensorDataset(torch.randn(64, 2))
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    before = [p.clone() for p in G.parameters()]
    for (real,) in loader:
        logs = gan.step(real)
    assert gan.step_count == 4 and isinstance(logs["d_loss"], float)
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))
    assert gan.sample(10).shape == (10, 2)
    assert gan.optimizers["G"].param_groups[0]["lr"] == 2e-4 and gan.optimizers["D"].param_groups[0]["lr"] == 1e-4


def test_z_dim_from_generator_attribute_and_missing():
    G, D = tiny_nets(z_dim=5)
    G.z_dim = 5
    assert gt.GAN(G, D).z_shape == (5,)
    del G.z_dim
    with pytest.raises(ConfigError, match="z_dim"):
        gt.GAN(G, D)


def test_n_critic_draws_a_fresh_batch_per_d_update():
    G, D = tiny_nets()
    gan = gt.GAN(G, D, z_dim=2, n_critic=3)
    drawn = []

    def batches():
        drawn.append(1)
        return torch.randn(8, 2)
    gan.step(batches)
    assert len(drawn) == 3
    assert gan.optimizers["D"].state[next(iter(D.parameters()))]["step"] == 3
    assert gan.optimizers["G"].state[next(iter(G.parameters()))]["step"] == 1


def test_g_step_leaves_d_untouched_and_d_step_leaves_g_untouched():
    G, D = tiny_nets()
    gan = gt.GAN(G, D, z_dim=2)
    g_before = [p.clone() for p in G.parameters()]
    real = torch.randn(8, 2)
    fake = gan.generate(8).detach()
    loss, _ = gan.discriminator_loss(gan.D, real, fake)
    gan.update("D", loss)
    assert all(torch.equal(a, b) for a, b in zip(g_before, G.parameters()))
    d_before = [p.clone() for p in D.parameters()]
    with gan.frozen("D"):
        loss, _ = gan.generator_loss(gan.D, gan.generate(8), real)
        gan.update("G", loss)
    assert all(torch.equal(a, b) for a, b in zip(d_before, D.parameters()))
    assert all(p.requires_grad for p in D.parameters())


def test_standard_step_equals_a_hand_written_loop():
    """One gantricks step against the textbook loop: same seed, same parameters after."""
    torch.manual_seed(1)
    G1, D1 = tiny_nets()
    G2, D2 = tiny_nets()
    G2.load_state_dict(G1.state_dict())
    D2.load_state_dict(D1.state_dict())
    real = torch.randn(16, 2)
    gan = gt.GAN(G1, D1, z_dim=2, lr_g=1e-3, lr_d=1e-3, betas=(0.5, 0.999))
    torch.manual_seed(7)
    gan.step(real)

    opt_g = torch.optim.Adam(G2.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D2.parameters(), lr=1e-3, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    torch.manual_seed(7)
    fake = G2(torch.randn(16, 2)).detach()
    d_loss = bce(D2(real), torch.ones(16, 1)) + bce(D2(fake), torch.zeros(16, 1))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = bce(D2(G2(torch.randn(16, 2))), torch.ones(16, 1))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    for a, b in zip(list(G1.parameters()) + list(D1.parameters()), list(G2.parameters()) + list(D2.parameters())):
        torch.testing.assert_close(a, b)


def test_data_sources():
    x = torch.arange(10.0).view(5, 2)
    s = as_sampler(x, seed=0)
    seen = torch.cat([s(2), s(2), s(1)])
    assert sorted(seen[:, 0].tolist()) == [0, 2, 4, 6, 8]            # one epoch: every row once
    state = s.state_dict()
    a = s(3)
    s.load_state_dict(state)
    assert torch.equal(s(3), a)
    assert as_sampler(lambda n: torch.zeros(n, 2))(4).shape == (4, 2)
    ds = torch.utils.data.TensorDataset(torch.randn(6, 3), torch.zeros(6))
    assert as_sampler(ds)(4).shape == (4, 3)
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    src = as_sampler(loader)
    assert [src(0).shape[0] for _ in range(3)] == [4, 2, 4]           # restarts when exhausted
    with pytest.raises(ConfigError, match="NaN"):
        FixedSet(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ConfigError):
        as_sampler(42)


def test_builtin_mixture_is_a_fixed_training_set_by_default():
    from gantricks.registry import datasets

    ring = datasets.build("ring8", seed=0)
    assert len(ring) == 100_000 and ring.shape == (2,)
    endless = datasets.build("ring8:train_points=0", seed=0)
    assert endless(5).shape == (5, 2)


def test_nonfinite_loss_raises_with_step():
    G, D = tiny_nets()
    gan = gt.GAN(G, D, z_dim=2)
    gan.step(torch.randn(8, 2))
    with pytest.raises(gt.NonFiniteError, match="at step 2"):
        gan.step(torch.full((8, 2), float("inf")))


def test_mlp_nets_match_pacgan_sizes():
    from gantricks.nets import Maxout
    from gantricks.registry import nets

    G = nets.build("mlp", role="generator", data_shape=(2,), z_dim=2)
    D = nets.build("mlp", role="discriminator", data_shape=(2,), z_dim=2)
    lin = [m for m in G.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in lin] == [400, 400, 400, 400, 2]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in G.modules()) == 4
    mo = [m for m in D.modules() if isinstance(m, Maxout)]
    assert len(mo) == 3 and all(m.linear.out_features == 1000 and m.pieces == 5 for m in mo)
    x = torch.randn(4, 2)
    m = mo[0]
    ref = m.linear(x).view(4, 200, 5).max(dim=2).values
    torch.testing.assert_close(m(x), ref)
    assert D(x).shape == (4,)
