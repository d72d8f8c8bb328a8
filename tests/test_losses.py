"""Each loss against its formula, written out independently with sigmoid/log."""
import pytest
import torch
from torch.testing import assert_close

from gantricks import losses
from gantricks.registry import losses as loss_registry


def _data():
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(7, generator=g) * 2, torch.randn(7, generator=g) * 2
    rt, ft = torch.rand(7, generator=g) * 0.3 + 0.7, torch.rand(7, generator=g) * 0.3
    return real.double(), fake.double(), rt.double(), ft.double()


def _bce(l, t):
    s = torch.sigmoid(l)
    return -(t * torch.log(s) + (1 - t) * torch.log(1 - s)).mean()


def test_minimax_and_nonsaturating_match_formulas():
    real, fake, rt, ft = _data()
    ones = torch.ones_like(fake)
    assert_close(losses.minimax_d(real, fake, rt, ft), _bce(real, rt) + _bce(fake, ft))
    assert_close(losses.minimax_g(fake, ones), torch.log(1 - torch.sigmoid(fake)).mean())
    assert_close(losses.nonsaturating_g(fake, ones), -torch.log(torch.sigmoid(fake)).mean())


def test_wasserstein_hinge_least_squares_match_formulas():
    real, fake, rt, ft = _data()
    ones = torch.ones_like(fake)
    assert_close(losses.wasserstein_d(real, fake, rt, ft), fake.mean() - real.mean())
    assert_close(losses.wasserstein_g(fake, ones), -fake.mean())
    hinge = torch.clamp(1 - real, min=0).mean() + torch.clamp(1 + fake, min=0).mean()
    assert_close(losses.hinge_d(real, fake, rt, ft), hinge)
    assert_close(losses.least_squares_d(real, fake, rt, ft),
                 0.5 * ((real - rt) ** 2).mean() + 0.5 * ((fake - ft) ** 2).mean())
    assert_close(losses.least_squares_g(fake, ones), 0.5 * ((fake - 1) ** 2).mean())


def test_targets_broadcast_over_patch_maps():
    """A (B, 1, H, W) logit map with (B,) targets: the mean over every patch."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 4, 4, generator=g)
    target = torch.tensor([1.0, 0.9, 0.0])
    manual = torch.stack([_bce(logits[i].flatten(), target[i].expand(16)) for i in range(3)]).mean()
    assert_close(losses.bce_with_targets(logits, target), manual)


def test_minimax_g_saturates_where_nonsaturating_does_not():
    """When D confidently rejects fakes (logit -10), minimax G's gradient vanishes, non-saturating's does not."""
    fake = torch.full((4,), -10.0, requires_grad=True)
    ones = torch.ones(4)
    (g_mm,) = torch.autograd.grad(losses.minimax_g(fake, ones), fake)
    (g_ns,) = torch.autograd.grad(losses.nonsaturating_g(fake, ones), fake)
    assert g_mm.abs().max() < 1e-4
    assert g_ns.abs().min() > 0.2


@pytest.mark.parametrize("name", loss_registry.names())
def test_every_loss_trains_a_step(name):
    from conftest import tiny_nets

    import gantricks as gt

    G, D = tiny_nets()
    gan = gt.GAN(G, D, z_dim=2, loss=name)
    logs = gan.step(torch.randn(16, 2))
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert {"d_loss", "g_loss"} <= logs.keys()
