"""Each trick's pure function against an independent reference: a formula, a per-sample loop,
an SVD. Includes the gradient-penalty norm bugs of PROTOCOLS.md as regression tests."""
from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch import nn
from torch.func import functional_call
from torch.testing import assert_close

import gantricks as gt
from gantricks.errors import ConfigError
from gantricks.nets.mlp import Maxout
from gantricks.tricks.base import StepContext
from gantricks.tricks.dragan import dragan_penalty
from gantricks.tricks.ema import ema_update
from gantricks.tricks.feature_matching import feature_matching_loss
from gantricks.tricks.instance_noise import noise_std
from gantricks.tricks.penalties import per_sample_norm
from gantricks.tricks.r1 import r1_penalty
from gantricks.tricks.replay import mix_in_replay, push
from gantricks.tricks.spectral_norm import apply_spectral_norm, matrix_dim
from gantricks.tricks.wgan_gp import wgan_gp_penalty

from _tricks_util import make_gan, single_thread  # noqa: F401  (autouse fixture)


# --- feature matching ----------------------------------------------------------------------
def test_feature_matching_loss_is_the_squared_distance_of_feature_means():
    real, fake = torch.randn(7, 3, 2), torch.randn(5, 3, 2)
    expected = 0.0
    for j in range(3):
        for k in range(2):
            mean_real = sum(real[i, j, k].item() for i in range(7)) / 7
            mean_fake = sum(fake[i, j, k].item() for i in range(5)) / 5
            expected += (mean_real - mean_fake) ** 2
    assert_close(feature_matching_loss(real, fake), torch.tensor(expected))


def _fm_gan(spec: str) -> gt.GAN:
    G = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    D = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 1))
    return gt.GAN(G, D, z_dim=2, tricks=[spec])


@pytest.mark.parametrize("spec,features", [
    ("feature-matching", lambda D, x: D[3](D[2](D[1](D[0](x))))),          # input of the last Linear
    ("feature-matching:layer=1", lambda D, x: D[1](D[0](x))),               # output of a named layer
    ("feature-matching:layer=0,weight=3", lambda D, x: 3 ** 0.5 * D[0](x)),
])
def test_feature_matching_term_matches_the_formula(spec, features):
    gan = _fm_gan(spec)
    real, fake = torch.randn(16, 2), gan.generate(16)
    _, logs = gan.generator_loss(gan.D, fake, real)
    expected = feature_matching_loss(features(gan.D, real), features(gan.D, fake))
    assert_close(logs["g_feature_matching"], expected.detach())
    assert "g_adv" not in logs                                     # alone=true replaces G's loss


def test_feature_matching_works_with_a_functional_discriminator():
    """Under unrolled schemes ctx.D is torch.func.functional_call with other parameters."""
    gan = _fm_gan("feature-matching")
    params = {n: 2 * p.detach() for n, p in gan.D.named_parameters()}
    functional_D = lambda x: functional_call(gan.D, params, (x,))  # noqa: E731
    real, fake = torch.randn(16, 2), gan.generate(16)
    _, logs = gan.generator_loss(functional_D, fake, real)

    def features(x):
        h = torch.relu(nn.functional.linear(torch.tanh(nn.functional.linear(x, params["0.weight"], params["0.bias"])),
                                            params["2.weight"], params["2.bias"]))
        return h
    assert_close(logs["g_feature_matching"], feature_matching_loss(features(real), features(fake)).detach())


def test_feature_matching_sends_gradient_to_g_only_through_the_fakes():
    gan = _fm_gan("feature-matching:alone=false")
    real = torch.randn(16, 2, requires_grad=True)
    with gan.frozen("D"):
        total, logs = gan.generator_loss(gan.D, gan.generate(16), real)
        total.backward()
    assert real.grad is None                                     # real features under no_grad
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gan.G.parameters())
    assert "g_adv" in logs and "g_feature_matching" in logs


def test_feature_matching_refuses_an_unknown_layer():
    with pytest.raises(ConfigError, match="D has no layer 'nope'; its layers are: 0, 1, 2"):
        _fm_gan("feature-matching:layer=nope")


# --- targets ------------------------------------------------------------------------------------
def test_label_smoothing_sets_real_targets_and_leaves_fake_ones():
    gan = make_gan(["label-smoothing:real=0.8"])
    real_t, fake_t = gan.targets(50, 40, "cpu")
    assert_close(real_t, torch.full((50,), 0.8))
    assert_close(fake_t, torch.zeros(40))


N = 200_000


@pytest.mark.parametrize("real,fake", [((0.7, 1.2), (0.0, 0.3)), ((-1.0, -0.5), (0.25, 0.25))])
def test_noisy_labels_are_uniform_on_their_ranges(real, fake):
    spec = f"noisy-labels:real_low={real[0]},real_high={real[1]},fake_low={fake[0]},fake_high={fake[1]}"
    real_t, fake_t = make_gan([spec], "least-squares").targets(N, N, "cpu")
    for t, (lo, hi) in ((real_t, real), (fake_t, fake)):
        assert lo <= t.min() and t.max() <= hi
        if hi > lo:
            assert t.min() < lo + 0.001 * (hi - lo) and t.max() > hi - 0.001 * (hi - lo)   # spans the range
            assert abs(t.mean().item() - (lo + hi) / 2) < 5 * (hi - lo) / math.sqrt(12 * N)
            assert stats.kstest(t.numpy(), "uniform", args=(lo, hi - lo)).pvalue > 1e-4
        else:
            assert_close(t, torch.full_like(t, lo))


def test_noisy_labels_defaults_are_ganhacks_and_bad_ranges_are_refused():
    trick = gt.registry.tricks.build("noisy-labels")
    assert (trick.real, trick.fake) == ((0.7, 1.2), (0.0, 0.3))
    with pytest.raises(ConfigError, match="real_low .* must be <= real_high"):
        gt.registry.tricks.build("noisy-labels:real_low=1.0,real_high=0.5")


def test_label_flip_swaps_at_rate_p_after_smoothing():
    p = 0.2
    real_t, fake_t = make_gan(["label-flip:p=0.2", "label-smoothing:real=0.9"]).targets(N, N, "cpu")
    for t, flipped_value in ((real_t, 0.0), (fake_t, 0.9)):      # flipped fakes take the smoothed real target
        rate = (t == flipped_value).float().mean().item()
        assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / N)
    for t in (real_t, fake_t):
        assert t.unique().tolist() == pytest.approx([0.0, 0.9])


@pytest.mark.parametrize("spec", ["label-smoothing", "noisy-labels", "label-flip:p=0.5"])
def test_target_tricks_never_change_the_generator_loss(spec):
    plain, tricked = make_gan([]), make_gan([spec])
    z = torch.randn(32, 2)
    fake_plain, fake_tricked = plain.G(z), tricked.G(z)
    assert_close(tricked.generator_loss(tricked.D, fake_tricked, None)[0],
                 plain.generator_loss(plain.D, fake_plain, None)[0])
    assert not torch.allclose(tricked.discriminator_loss(tricked.D, torch.randn(32, 2), fake_tricked)[0],
                              plain.discriminator_loss(plain.D, torch.randn(32, 2), fake_plain)[0])


@pytest.mark.parametrize("spec", ["label-smoothing", "noisy-labels", "label-flip"])
@pytest.mark.parametrize("loss", ["hinge", "wasserstein"])
def test_target_tricks_are_refused_for_losses_without_labels(spec, loss):
    with pytest.raises(ConfigError, match=f"'{spec}' changes D's labels, but loss '{loss}' has none"):
        make_gan([spec], loss)


# --- spectral norm --------------------------------------------------------------------------------
def _matrix(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """The weight as PyTorch's spectral norm sees it: ``dim`` first, the rest flattened."""
    return weight.movedim(dim, 0).flatten(1)


def test_spectral_norm_estimates_the_largest_singular_value_of_every_layer_kind():
    zoo = nn.ModuleDict({"linear": nn.Linear(7, 5), "conv1d": nn.Conv1d(3, 4, 3), "conv2d": nn.Conv2d(2, 6, 3),
                         "conv3d": nn.Conv3d(1, 3, 2), "tconv1d": nn.ConvTranspose1d(3, 5, 4),
                         "tconv2d": nn.ConvTranspose2d(6, 2, 3), "maxout": Maxout(4, 3, 5)})
    with torch.no_grad():
        for p in zoo.parameters():
            p.mul_(3)                                   # σ well away from 1, so the test can fail
    changed = apply_spectral_norm(zoo, n_power_iterations=1)
    assert sorted(changed) == sorted(["linear", "conv1d", "conv2d", "conv3d", "tconv1d", "tconv2d", "maxout.linear"])
    layers = [m for _, m in zoo.named_modules() if torch.nn.utils.parametrize.is_parametrized(m, "weight")]
    for layer in layers:
        assert layer.parametrizations.weight[0].dim == matrix_dim(layer)
        for _ in range(30):                              # each access in train mode is one power iteration
            layer.weight
        layer.eval()
        original = _matrix(layer.parametrizations.weight.original.detach(), matrix_dim(layer))
        sigma_true = torch.linalg.svdvals(original)[0]
        effective = _matrix(layer.weight.detach(), matrix_dim(layer))
        assert sigma_true > 1.5
        assert_close(torch.linalg.svdvals(effective)[0], torch.tensor(1.0), rtol=0.02, atol=0)
        assert_close(original.norm() / effective.norm(), sigma_true, rtol=0.02, atol=0)   # the σ it divides by


def test_spectral_norm_after_training_steps_on_a_maxout_discriminator():
    data = gt.registry.datasets.build("ring8", seed=0)
    G = gt.registry.nets.build("mlp:width=32,depth=2", role="generator", data_shape=(2,), z_dim=2)
    D = gt.registry.nets.build("mlp:width=24,maxout=3", role="discriminator", data_shape=(2,), z_dim=2)
    gan = gt.GAN(G, D, z_dim=2, tricks=["spectral-norm"], lr_d=1e-3)
    for _ in range(20):
        gan.step(lambda: data(64))
    layers = [m for m in gan.D.modules() if isinstance(m, nn.Linear)]
    assert len(layers) == 4                                       # 3 inside Maxout units + the head
    # Training moves W while u, v get one iteration per forward: when two singular values
    # cross, the estimate lags (seen: up to ~10% after 60 steps), so iterate before checking.
    for _ in range(50):
        for layer in layers:
            layer.weight
    gan.D.eval()
    for layer in layers:
        assert_close(torch.linalg.svdvals(layer.weight.detach())[0], torch.tensor(1.0), rtol=0.02, atol=0)


def test_spectral_norm_skips_parametrized_layers_and_can_cover_g():
    G, D = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2)), nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 1))
    torch.nn.utils.parametrizations.spectral_norm(D[0])
    gan = gt.GAN(G, D, z_dim=2, tricks=["spectral-norm:generator=true,n_power_iterations=2"])
    assert len(gan.D[0].parametrizations.weight) == 1               # not normalised twice
    assert gan.D[1].parametrizations.weight[0].n_power_iterations == 2
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in (gan.G[0], gan.G[2]))
    assert not torch.nn.utils.parametrize.is_parametrized(make_gan(["spectral-norm"]).G[0])


# --- gradient penalties -----------------------------------------------------------------------------
def _conv_D(channels: int) -> nn.Module:
    """A small conv D with a map output (B, 1, H-2, W-2), like a PatchGAN."""
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 1, 3)).double()


CASES = {
    "2d": (lambda: nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).double(), (6, 2)),
    "rgb": (lambda: _conv_D(3), (5, 3, 8, 8)),
    "one-channel": (lambda: _conv_D(1), (5, 1, 5, 7)),
    "five-channel": (lambda: _conv_D(5), (4, 5, 4, 4)),
}


def _loop_norms(D, points: torch.Tensor) -> torch.Tensor:
    """Per-sample input-gradient norms, one sample at a time (the reference)."""
    norms = []
    for x in points:
        x = x.unsqueeze(0).clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x).sum(), x)
        norms.append(math.sqrt(sum(v * v for v in grad.flatten().tolist())))
    return torch.tensor(norms, dtype=points.dtype)


@pytest.mark.parametrize("case", CASES)
def test_wgan_gp_equals_a_per_sample_loop(case):
    make_D, shape = CASES[case]
    D, real, fake = make_D(), torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    eps = torch.rand(shape[0], dtype=torch.float64)
    value, norms = wgan_gp_penalty(D, real, fake, target=1.0, eps=eps)
    points = torch.stack([eps[i] * real[i] + (1 - eps[i]) * fake[i] for i in range(shape[0])])
    expected = _loop_norms(D, points)
    assert_close(norms.detach(), expected)
    assert_close(value.detach(), ((expected - 1) ** 2).mean())
    assert_close(wgan_gp_penalty(D, real, fake, target=0.5, eps=eps)[0].detach(), ((expected - 0.5) ** 2).mean())


@pytest.mark.parametrize("case", CASES)
def test_dragan_equals_a_per_sample_loop(case):
    make_D, shape = CASES[case]
    D, real = make_D(), torch.randn(shape, dtype=torch.float64)
    noise, alpha = torch.rand(shape, dtype=torch.float64), torch.rand(shape[0], dtype=torch.float64)
    value, norms = dragan_penalty(D, real, c=0.5, target=1.0, noise=noise, alpha=alpha)
    values = real.flatten().tolist()
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))       # numpy's minibatch.std()
    points = torch.stack([real[i] + alpha[i] * (0.5 * std * noise[i]) for i in range(shape[0])])
    expected = _loop_norms(D, points)
    assert_close(norms.detach(), expected)
    assert_close(value.detach(), ((expected - 1) ** 2).mean())


@pytest.mark.parametrize("case", CASES)
def test_r1_equals_a_per_sample_loop(case):
    make_D, shape = CASES[case]
    D, real = make_D(), torch.randn(shape, dtype=torch.float64)
    value, norms = r1_penalty(D, real)
    expected = _loop_norms(D, real)
    assert_close(norms.detach(), expected)
    assert_close(value.detach(), (expected ** 2).mean())


def test_penalty_gradient_reaches_d_parameters_as_the_loop_says():
    make_D, shape = CASES["2d"]
    D, real, fake = make_D(), torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    eps = torch.rand(shape[0], dtype=torch.float64)
    ours = torch.autograd.grad(wgan_gp_penalty(D, real, fake, eps=eps)[0], list(D.parameters()), allow_unused=True)
    ours = [g if g is not None else torch.zeros_like(p) for g, p in zip(ours, D.parameters())]
    terms = []
    for i in range(shape[0]):
        x = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        terms.append((g.pow(2).sum().sqrt() - 1) ** 2)
    reference = torch.autograd.grad(torch.stack(terms).mean(), list(D.parameters()), allow_unused=True)
    for a, b in zip(ours, reference):
        assert_close(a, b if b is not None else torch.zeros_like(a))   # the last bias has no say in ∇_x D
    assert ours[0].abs().sum() > 0


def _steep(D: nn.Module) -> nn.Module:
    """D with its weights tripled: gradient norms well above 1, where the bugs show plainly."""
    with torch.no_grad():
        for p in D.parameters():
            p.mul_(3)
    return D


def test_regression_whole_batch_norm_gives_another_penalty():
    """Public bug: one norm over the whole batch's gradient instead of one per sample."""
    make_D, shape = CASES["2d"]
    D, real, fake = _steep(make_D()), torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    eps = torch.rand(shape[0], dtype=torch.float64)
    right, _ = wgan_gp_penalty(D, real, fake, eps=eps)
    x = (eps[:, None] * real + (1 - eps[:, None]) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x)
    wrong = (grad.norm() - 1) ** 2
    assert_close(right.detach(), ((_loop_norms(D, x.detach()) - 1) ** 2).mean())
    assert abs(wrong.item() - right.item()) > 0.1 * right.item()


@pytest.mark.parametrize("case", ["rgb", "one-channel", "five-channel"])
def test_regression_norm_over_dim1_of_an_image_gradient_gives_another_penalty(case):
    """Public bug: ``grad.norm(2, dim=1)`` on a (B, C, H, W) gradient: a norm over channels only."""
    make_D, shape = CASES[case]
    D, real = _steep(make_D()), torch.randn(shape, dtype=torch.float64)
    noise, alpha = torch.rand(shape, dtype=torch.float64), torch.rand(shape[0], dtype=torch.float64)
    right, norms = dragan_penalty(D, real, noise=noise, alpha=alpha)
    x = real + alpha[:, None, None, None] * 0.5 * real.std(correction=0) * noise
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x)
    wrong = ((grad.norm(2, dim=1) - 1) ** 2).mean()
    assert_close(norms.detach(), _loop_norms(D, x.detach()))
    assert abs(wrong.item() - right.item()) > 0.1 * right.item()


def test_per_sample_norm_covers_every_non_batch_dimension():
    grad = torch.ones(3, 5, 4, 2)
    assert_close(per_sample_norm(grad), torch.full((3,), math.sqrt(5 * 4 * 2)))


def _ctx(gan, real, fake):
    return StepContext(gan, gan.D, real, fake, real_in=real, fake_in=fake, phase="D")


@pytest.mark.parametrize("spec,weight", [("wgan-gp", 10.0), ("wgan-gp:weight=2.5,target=0.5", 2.5),
                                         ("dragan", 10.0), ("dragan:weight=3,c=1.5", 3.0)])
def test_penalty_tricks_apply_their_weight_target_and_draws(spec, weight):
    gan = make_gan([spec])
    trick, real, fake = gan.tricks[0], torch.randn(24, 2), torch.randn(24, 2)
    torch.manual_seed(5)
    value, _ = trick.penalty(_ctx(gan, real, fake))
    torch.manual_seed(5)                                   # the same draws, in the same order
    if trick.name == "wgan-gp":
        expected, _ = wgan_gp_penalty(gan.D, real, fake, trick.target, eps=torch.rand(24))
    else:
        noise = torch.rand_like(real)
        expected, _ = dragan_penalty(gan.D, real, trick.c, trick.target, noise=noise, alpha=torch.rand(24))
    assert_close(value, weight * expected)


def test_lazy_r1_runs_every_k_th_d_loss_scaled_by_k():
    gan = make_gan(["r1:gamma=4,every=3"])
    real, fake = torch.randn(24, 2), torch.randn(24, 2)
    full = 0.5 * 4 * r1_penalty(gan.D, real)[0]
    seen = []
    for _ in range(7):
        _, logs = gan.discriminator_loss(gan.D, real, fake)
        seen.append(logs.get("d_r1"))
        assert "r1_grad_norm" in logs
    assert [v is not None for v in seen] == [True, False, False, True, False, False, True]
    assert_close(seen[3], 3 * full.detach())


# --- instance noise, replay, EMA ------------------------------------------------------------------
def test_instance_noise_schedules():
    assert [noise_std(0.2, t, 100) for t in (0, 25, 100, 150)] == pytest.approx([0.2, 0.15, 0.0, 0.0])
    assert [noise_std(0.2, t, 100, "cosine") for t in (0, 50, 100)] == pytest.approx([0.2, 0.1, 0.0])
    assert noise_std(0.2, 10_000, 100, "constant") == 0.2


def test_instance_noise_adds_the_scheduled_std_to_real_and_fake_in_both_phases():
    gan = make_gan(["instance-noise:sigma=0.5,anneal_steps=10"])
    zeros = torch.zeros(100_000, 2)
    for step, std in ((0, 0.5), (4, 0.3), (10, 0.0)):
        gan.step_count = step
        real_in, fake_in = gan.d_inputs(zeros, zeros, "D")
        _, fake_g = gan.d_inputs(None, zeros, "G")
        for x in (real_in, fake_in, fake_g):
            assert abs(x.std().item() - std) < 0.01 and abs(x.mean().item()) < 0.01
        assert std == 0 or not torch.equal(real_in, fake_in)


def test_replay_mixes_the_stated_fraction_and_keeps_the_buffer_bounded():
    gan = make_gan(["replay:size=50,fraction=0.25"])
    trick = gan.tricks[0]
    for step in range(10):
        fake = torch.full((20, 2), float(step))
        _, mixed = gan.d_inputs(torch.zeros(20, 2), fake, "D")
        old = (mixed[:, 0] < step).sum().item()
        assert old == (0 if step == 0 else 5)                     # round(0.25 * 20) swapped, once there is history
        assert torch.equal(mixed[mixed[:, 0] == step], fake[: 20 - old])
        assert len(trick.buffer) == min(50, 20 * (step + 1))
    assert torch.equal(gan.d_inputs(None, fake, "G")[1], fake)   # G's step sees its own samples


def test_replay_buffer_push_overwrites_random_entries_when_full():
    buffer = push(torch.zeros(0, 1), torch.ones(8, 1), size=8, count=3)
    assert torch.equal(buffer, torch.ones(8, 1))
    buffer = push(buffer, torch.full((8, 1), 2.0), size=8, count=3)
    assert (buffer == 2).sum() == 3 and len(buffer) == 8
    assert torch.equal(mix_in_replay(torch.ones(4, 1), torch.zeros(0, 1), 2), torch.ones(4, 1))


def test_ema_update_formula_and_buffers():
    model, average = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(2.0), average.weight.fill_(1.0)
    model(torch.randn(8, 3))
    ema_update(average, model, 0.9)
    assert_close(average.weight, torch.full((3,), 0.9 * 1.0 + 0.1 * 2.0))
    assert_close(average.running_mean, model.running_mean)
    assert average.num_batches_tracked == 1
