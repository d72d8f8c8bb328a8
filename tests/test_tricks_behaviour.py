"""Tricks do what they claim: spectral norm bounds D's slope, label smoothing caps D's confidence,
penalties pull the gradient norm to their target, EMA samples from the average."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import gantricks as gt
from gantricks.tricks.dragan import dragan_penalty
from gantricks.tricks.penalties import input_gradient, per_sample_norm
from gantricks.tricks.r1 import r1_penalty
from gantricks.tricks.wgan_gp import wgan_gp_penalty

from _tricks_util import tiny_pair, single_thread  # noqa: F401  (autouse fixture)

DATA = gt.registry.datasets.build("ring8", seed=0)


def _gan(tricks=(), steep: float = 1.0, seed: int = 0, **kwargs) -> gt.GAN:
    """Tiny nets from ``seed``; D's weights scaled by ``steep`` (a steep D: large input gradients)."""
    torch.manual_seed(seed)
    G, D = tiny_pair()
    with torch.no_grad():
        for p in D.parameters():
            p.mul_(steep)
    return gt.GAN(G, D, z_dim=2, tricks=list(tricks), **kwargs)


def _train(gan: gt.GAN, steps: int) -> list[dict]:
    return [gan.step(lambda: DATA(64)) for _ in range(steps)]


def test_spectral_norm_bounds_the_input_gradient_of_d():
    plain, normed = _gan(steep=3, lr_d=1e-3), _gan(["spectral-norm"], steep=3, lr_d=1e-3)
    norms = {}
    for name, gan in (("plain", plain), ("normed", normed)):
        _train(gan, 30)
        torch.manual_seed(1)
        x = torch.cat([DATA(256), gan.sample(256)])
        norms[name] = per_sample_norm(input_gradient(gan.D, x)).detach()
    # every layer has σ ≤ 1 (to the estimate's 2%) and LeakyReLU slopes ≤ 1: D is 1-Lipschitz
    assert norms["normed"].max() <= 1.02 ** 3
    assert norms["plain"].mean() > 2.0


def test_label_smoothing_caps_d_confidence_on_real_data():
    """A nearly frozen G (tiny lr) lets D win; with smoothing its real confidence stops near 0.9."""
    confidence = {}
    for name, tricks in (("baseline", []), ("smoothed", ["label-smoothing:real=0.9"])):
        gan = _gan(tricks, lr_d=1e-2, lr_g=1e-8)
        _train(gan, 80)
        with torch.no_grad():
            confidence[name] = torch.sigmoid(gan.D(DATA(2000))).mean().item()
    assert confidence["baseline"] > 0.97
    assert 0.85 < confidence["smoothed"] < 0.93


def _measured(spec: str, gan: gt.GAN) -> float:
    """The mean gradient norm where ``spec``'s penalty looks, on fresh data."""
    torch.manual_seed(2)
    real, fake = DATA(256), gan.sample(256)
    if spec == "wgan-gp":
        return wgan_gp_penalty(gan.D, real, fake)[1].mean().item()
    if spec == "dragan":
        return dragan_penalty(gan.D, real)[1].mean().item()
    return r1_penalty(gan.D, real)[1].mean().item()


@pytest.mark.parametrize("spec,loss,target", [("wgan-gp", "wasserstein", 1.0), ("dragan", "nonsaturating", 1.0),
                                              ("r1", "nonsaturating", 0.0)])
def test_penalty_drives_the_gradient_norm_to_its_target(spec, loss, target):
    penalised, baseline = _gan([spec], steep=3, loss=loss, lr_d=1e-2), _gan(steep=3, loss=loss, lr_d=1e-2)
    logs = _train(penalised, 60)
    _train(baseline, 60)
    key = spec.replace("-", "_") + "_grad_norm"
    start = logs[0][key]
    end = sum(log[key] for log in logs[-5:]) / 5
    assert abs(start - target) > 1.0                       # the steep D starts far from the target
    assert abs(end - target) < 0.3 and abs(end - target) < 0.25 * abs(start - target)
    assert abs(_measured(spec, penalised) - target) < 0.3
    assert abs(_measured(spec, baseline) - target) > 2 * abs(_measured(spec, penalised) - target)


# --- EMA ------------------------------------------------------------------------------------------
def test_ema_follows_the_average_and_is_what_sample_uses():
    gan = _gan(["ema:decay=0.5,warmup=2"], lr_g=1e-2)
    average = {n: p.detach().clone() for n, p in gan.G.named_parameters()}
    for step in range(1, 6):
        gan.step(lambda: DATA(64))
        decay = 0.0 if step <= 2 else 0.5
        average = {n: decay * average[n] + (1 - decay) * p.detach() for n, p in gan.G.named_parameters()}
    ema = gan.sampling_generator
    assert ema is not gan.G
    for n, p in ema.named_parameters():
        assert_close(p, average[n])
        assert not p.requires_grad
    z = torch.randn(32, 2, generator=torch.Generator().manual_seed(7))
    samples = gan.sample(32, generator=torch.Generator().manual_seed(7))
    assert_close(samples, ema(z))
    assert not torch.allclose(samples, gan.G(z))


def test_ema_copies_batch_norm_statistics_and_follows_a_spectral_norm_generator():
    G = gt.registry.nets.build("mlp:width=16,depth=2", role="generator", data_shape=(2,), z_dim=2)
    D = gt.registry.nets.build("mlp:width=16,maxout=2", role="discriminator", data_shape=(2,), z_dim=2)
    gan = gt.GAN(G, D, z_dim=2, tricks=["ema", "spectral-norm:generator=true"])   # ema listed first
    _train(gan, 3)
    ema_state, g_state = gan.sampling_generator.state_dict(), gan.G.state_dict()
    assert ema_state.keys() == g_state.keys()
    for name in g_state:
        if "running" in name or name.endswith(("_u", "_v")):
            assert_close(ema_state[name], g_state[name])
    bn = next(m for m in gan.sampling_generator.modules() if isinstance(m, nn.BatchNorm1d))
    assert bn.num_batches_tracked.item() == gan.G.net[1].num_batches_tracked.item() > 0


def test_ema_refuses_bad_decay():
    with pytest.raises(gt.ConfigError, match=r"decay must be in \[0, 1\)"):
        _gan(["ema:decay=1"])
