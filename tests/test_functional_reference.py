"""gantricks.functional against independent references: each function called by name and checked against
its paper's formula written out by hand (plain loops / torch ops, no gantricks code), a closed form, a finite
difference, torch's own optimizer or module, or a seeded statistical check whose tolerance is 4 standard
errors of the sample size used."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from gantricks.functional import (add_instance_noise, cross_generator_cosine, dragan_points, ebgan_d_loss,
                                  ebgan_g_loss, energy_and_embedding, flip_targets, functional_discriminator,
                                  instance_noise_std, madgan_d_loss, madgan_g_loss, mode_regularizers, r2_penalty,
                                  sgd_step, uniform_targets)

f64 = torch.float64
Z = 4.0   # statistical checks: |estimate - expected| <= Z standard errors


def within(estimate: float, expected: float, se: float, what: str) -> None:
    assert abs(estimate - expected) <= Z * se, f"{what}: {estimate:.5f}, expected {expected:.5f} ± {Z * se:.5f}"


def population_std(x: torch.Tensor) -> float:
    """numpy's ``minibatch.std()``: over every element of the batch, divided by n (not n - 1)."""
    values = x.flatten().tolist()
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


# --- DRAGAN's perturbed points (Kodali et al. 2017, §5 and their get_perturbed_batch) ------------------------
@pytest.mark.parametrize("c", [0.5, 2.0])
def test_dragan_points_with_given_noise_and_alpha_is_the_authors_perturbation(c):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 2, 2, generator=g, dtype=f64) * 1.7 + 0.3
    u = torch.rand(x.shape, generator=g, dtype=f64)
    alpha = torch.tensor([0.0, 0.25, 1.0], dtype=f64)
    std = population_std(x)
    expected = torch.empty_like(x)
    for i in range(x.shape[0]):                      # one α per sample, over all of its elements
        x_p = x[i] + c * std * u[i]
        expected[i] = x[i] + alpha[i] * (x_p - x[i])
    assert_close(dragan_points(x, c, noise=u, alpha=alpha), expected)
    assert_close(dragan_points(x, c, u, alpha)[0], x[0])                      # α = 0: x itself
    assert_close(dragan_points(x, c, u, alpha)[2], x[2] + c * std * u[2])    # α = 1: x_p
    if c == 0.5:   # the paper's C is the default
        assert_close(dragan_points(x, noise=u, alpha=alpha), expected)


def test_dragan_points_random_draws_lie_in_0_to_c_std_with_one_alpha_per_sample():
    torch.manual_seed(2)
    B, D, c = 4000, 8, 0.5
    x = torch.randn(B, D, dtype=f64) * 3.0 + 1.0
    scale = c * population_std(x)

    delta = (dragan_points(x) - x) / scale          # α·u, elementwise in [0, 1)
    assert delta.min() >= 0 and delta.max() < 1
    # E[α u] = 1/4; the per-sample means α·ū are independent, Var = E[α²]E[ū²] - 1/16
    var = (1 / 3) * (1 / 4 + 1 / (12 * D)) - 1 / 16
    within(delta.mean().item(), 0.25, math.sqrt(var / B), "mean of (x̂ - x) / (C std)")

    delta = (dragan_points(x, noise=torch.ones_like(x)) - x) / scale      # u = 1: α alone
    assert_close(delta, delta[:, :1].expand(B, D))                         # one α per sample ...
    assert delta.min() >= 0 and delta.max() < 1
    within(delta[:, 0].mean().item(), 0.5, math.sqrt(1 / 12 / B), "mean α")   # ... U[0, 1) across samples
    within((delta[:, 0] < 0.25).double().mean().item(), 0.25, math.sqrt(0.25 * 0.75 / B), "P(α < 1/4)")

    delta = (dragan_points(x, alpha=torch.ones(B, dtype=f64)) - x) / scale   # α = 1: u alone, per element
    assert delta.min() >= 0 and delta.max() < 1
    within(delta.mean().item(), 0.5, math.sqrt(1 / 12 / (B * D)), "mean u")
    assert (delta[:, 1:] != delta[:, :1]).all()                             # u varies within a sample


def test_dragan_points_scale_is_a_constant_of_the_batch():
    # the authors compute the perturbation in numpy, outside the graph: ∂x̂/∂x is the identity
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, generator=g, dtype=f64).requires_grad_()
    u, alpha = torch.rand(4, 3, generator=g, dtype=f64), torch.rand(4, generator=g, dtype=f64)
    (grad,) = torch.autograd.grad(dragan_points(x, 0.5, u, alpha).sum(), x)
    assert_close(grad, torch.ones_like(x))


# --- R2 (Mescheder et al. 2018, Eq. 10): γ/2 · E‖∇_x D(x̃)‖² on fakes ---------------------------------------
def test_r2_penalty_of_a_linear_D_is_the_squared_weight_norm():
    w = torch.tensor([0.5, -2.0, 1.5], dtype=f64, requires_grad=True)
    b = torch.tensor(0.3, dtype=f64, requires_grad=True)
    D = lambda x: (x @ w + b).unsqueeze(1)         # noqa: E731 - ∇_x D = w for every sample
    fake = torch.randn(5, 3, dtype=f64)
    penalty, norms = r2_penalty(D, fake)
    assert_close(norms, torch.full((5,), math.sqrt(0.25 + 4.0 + 2.25), dtype=f64))
    assert_close(penalty, torch.tensor(6.5, dtype=f64))
    gamma = 10.0
    assert_close(gamma / 2 * penalty, torch.tensor(32.5, dtype=f64))          # Eq. 10 with its weight
    (grad_w,) = torch.autograd.grad(penalty, w)                                # trains D: ∂‖w‖²/∂w = 2w
    assert_close(grad_w, 2 * w.detach())


def test_r2_penalty_of_a_quadratic_D_on_image_fakes_is_the_per_sample_norm_written_out():
    g = torch.Generator().manual_seed(4)
    a = torch.rand(2, 2, 3, generator=g, dtype=f64) + 0.5
    D = lambda x: 0.5 * (a * x ** 2).flatten(1).sum(1, keepdim=True)       # noqa: E731 - ∇_x D = a·x
    fake = torch.randn(4, 2, 2, 3, generator=g, dtype=f64)
    expected_sq = []
    for i in range(4):   # ‖∇‖² over every non-batch dimension of sample i
        expected_sq.append(sum(((a * fake[i]).flatten() ** 2).tolist()))
    penalty, norms = r2_penalty(D, fake)
    assert_close(norms, torch.tensor(expected_sq, dtype=f64).sqrt())
    assert_close(penalty, torch.tensor(sum(expected_sq) / 4, dtype=f64))


# --- noisy labels and label flips (ganhacks #6) -----------------------------------------------------------
@pytest.mark.parametrize("low, high", [(0.7, 1.2), (0.0, 0.3)])
def test_uniform_targets_are_uniform_on_low_high(low, high):
    torch.manual_seed(5)
    n, w = 20000, high - low
    like = torch.zeros(n)
    t = uniform_targets(like, low, high)
    assert t.shape == like.shape and t.device == like.device
    assert t.min() >= low and t.max() <= high
    within(t.mean().item(), (low + high) / 2, w / math.sqrt(12 * n), "mean")
    within(t.var().item(), w ** 2 / 12, w ** 2 / math.sqrt(180 * n), "variance")     # Var(s²) = w⁴/(180 n)
    within((t < low + w / 4).float().mean().item(), 0.25, math.sqrt(0.25 * 0.75 / n), "first quarter")
    assert not torch.equal(t, uniform_targets(like, low, high))                    # drawn afresh each call
    assert_close(uniform_targets(torch.zeros(7), 0.9, 0.9), torch.full((7,), 0.9))


def test_flip_targets_swaps_each_target_independently_with_probability_p():
    torch.manual_seed(6)
    n, p = 4000, 0.3
    real_t = 0.5 + torch.arange(n, dtype=f64) / (2 * n)      # distinct, in [0.5, 1)
    fake_t = torch.arange(n, dtype=f64) / (2 * n)            # distinct, in [0, 0.5)
    new_real, new_fake = flip_targets(real_t, fake_t, p)
    assert new_real.shape == real_t.shape and new_fake.shape == fake_t.shape
    flip_r, flip_f = new_real < 0.5, new_fake >= 0.5
    assert torch.equal(new_real[~flip_r], real_t[~flip_r]) and torch.equal(new_fake[~flip_f], fake_t[~flip_f])
    assert torch.isin(new_real[flip_r], fake_t).all() and torch.isin(new_fake[flip_f], real_t).all()
    se = math.sqrt(p * (1 - p) / n)
    within(flip_r.double().mean().item(), p, se, "real flip rate")
    within(flip_f.double().mean().item(), p, se, "fake flip rate")
    within((flip_r & flip_f).double().mean().item(), p * p, math.sqrt(p * p * (1 - p * p) / n), "both flipped")
    # the new target is a random one of the other side, not the same index's partner
    drawn = new_real[flip_r]
    within(drawn.mean().item(), fake_t.mean().item(), fake_t.std().item() / math.sqrt(len(drawn)), "drawn mean")
    assert (drawn == fake_t[flip_r]).double().mean() < 0.01


def test_flip_targets_edge_probabilities_and_smoothed_labels():
    torch.manual_seed(7)
    real_t, fake_t = 0.5 + torch.rand(300) / 2, torch.rand(100) / 2        # unequal sizes
    r, f = flip_targets(real_t, fake_t, 0.0)
    assert torch.equal(r, real_t) and torch.equal(f, fake_t)
    r, f = flip_targets(real_t, fake_t, 1.0)
    assert r.shape == (300,) and f.shape == (100,)
    assert torch.isin(r, fake_t).all() and torch.isin(f, real_t).all()
    r, f = flip_targets(torch.full((8,), 0.9), torch.zeros(8), 1.0)          # a flipped fake is labelled 0.9
    assert_close(r, torch.zeros(8))
    assert_close(f, torch.full((8,), 0.9))


# --- instance noise (Sønderby et al. 2016, §3.1) -----------------------------------------------------------
COS_QUARTER = 0.5 * (1 + math.sqrt(2) / 2)   # 0.5 (1 + cos(π/4))


@pytest.mark.parametrize("schedule, step, expected", [
    ("linear", 0, 0.2), ("linear", 250, 0.15), ("linear", 500, 0.1), ("linear", 999, 0.2 / 1000),
    ("linear", 1000, 0.0), ("linear", 5000, 0.0),
    ("cosine", 0, 0.2), ("cosine", 250, 0.2 * COS_QUARTER), ("cosine", 500, 0.1),
    ("cosine", 750, 0.2 * (1 - COS_QUARTER)), ("cosine", 1000, 0.0), ("cosine", 3000, 0.0),
    ("constant", 0, 0.2), ("constant", 500, 0.2), ("constant", 5000, 0.2),
])
def test_instance_noise_std_schedule_values(schedule, step, expected):
    assert_close(instance_noise_std(0.2, step, 1000, schedule), expected, rtol=1e-12, atol=1e-12)


def test_instance_noise_std_default_schedule_is_linear():
    assert_close(instance_noise_std(0.4, 300, 1200), 0.3, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("std", [0.3, instance_noise_std(0.2, 500, 1000)])
def test_add_instance_noise_adds_gaussian_noise_of_that_std(std):
    torch.manual_seed(8)
    x = torch.randn(100, 100, dtype=f64) * 2.0
    out = add_instance_noise(x, std)
    assert out.shape == x.shape and out.dtype == x.dtype
    e = (out - x).flatten()
    n = e.numel()
    within(e.mean().item(), 0.0, std / math.sqrt(n), "noise mean")
    within(e.std().item(), std, std / math.sqrt(2 * (n - 1)), "noise std")
    q = math.erf(1 / math.sqrt(2))                                        # P(|N(0, σ²)| < σ)
    within((e.abs() < std).double().mean().item(), q, math.sqrt(q * (1 - q) / n), "P(|noise| < std)")
    within(torch.corrcoef(torch.stack([e[:-1], e[1:]]))[0, 1].item(), 0.0, 1 / math.sqrt(n), "neighbour corr")


def test_add_instance_noise_of_zero_std_is_the_input():
    x = torch.randn(5, 3)
    assert torch.equal(add_instance_noise(x, 0.0), x)


# --- EBGAN (Zhao et al. 2017, Eq. 1, 2, 6) ---------------------------------------------------------------
def pulling_away_by_hand(S: torch.Tensor) -> float:
    rows = [s.flatten().tolist() for s in S]
    n, total = len(rows), 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                dot = sum(a * b for a, b in zip(rows[i], rows[j]))
                norm_i, norm_j = math.sqrt(sum(a * a for a in rows[i])), math.sqrt(sum(b * b for b in rows[j]))
                total += (dot / (norm_i * norm_j)) ** 2
    return total / (n * (n - 1))


@pytest.mark.parametrize("margin", [0.25, 1.0])
def test_ebgan_d_loss_is_the_margin_loss_written_out(margin):
    real = torch.tensor([0.1, 0.4, 0.05], dtype=f64, requires_grad=True)
    fake = torch.tensor([0.0, 0.2, 0.3, 0.6, 1.5], dtype=f64, requires_grad=True)
    expected = sum(real.tolist()) / 3 + sum(max(0.0, margin - f) for f in fake.tolist()) / 5
    loss = ebgan_d_loss(real, fake, margin)
    assert_close(loss, torch.tensor(expected, dtype=f64))
    g_real, g_fake = torch.autograd.grad(loss, (real, fake))
    assert_close(g_real, torch.full((3,), 1 / 3, dtype=f64))
    assert_close(g_fake, torch.tensor([-0.2 if f < margin else 0.0 for f in fake.tolist()], dtype=f64))


@pytest.mark.parametrize("pt_weight", [0.0, 0.1, 0.7])
def test_ebgan_g_loss_is_energy_plus_pulling_away_written_out(pt_weight):
    g = torch.Generator().manual_seed(9)
    energy = torch.rand(4, generator=g, dtype=f64)
    S = torch.randn(4, 2, 3, generator=g, dtype=f64) * torch.tensor([0.1, 1.0, 5.0, 30.0], dtype=f64).view(4, 1, 1)
    expected = sum(energy.tolist()) / 4 + pt_weight * pulling_away_by_hand(S)
    assert_close(ebgan_g_loss(energy, S, pt_weight), torch.tensor(expected, dtype=f64))


def test_ebgan_pulling_away_term_is_0_for_orthogonal_and_1_for_parallel_embeddings():
    energy = torch.tensor([0.2, 0.4, 0.6], dtype=f64)
    orthogonal = torch.diag(torch.tensor([1.0, 3.0, 0.5], dtype=f64))
    parallel = torch.tensor([[1.0, 2.0], [-2.0, -4.0], [3.0, 6.0]], dtype=f64)
    assert_close(ebgan_g_loss(energy, orthogonal, 1.0), torch.tensor(0.4, dtype=f64))
    assert_close(ebgan_g_loss(energy, parallel, 1.0), torch.tensor(1.4, dtype=f64))


class TinyAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc, self.dec = nn.Linear(6, 2).double(), nn.Linear(2, 6).double()

    def encode(self, x):
        return self.enc(x.flatten(1))

    def decode(self, h):
        return self.dec(h).view(-1, 1, 2, 3)


def test_energy_and_embedding_is_the_per_sample_reconstruction_mse_written_out():
    torch.manual_seed(10)
    D = TinyAE()
    x = torch.randn(3, 1, 2, 3, dtype=f64)
    We, be, Wd, bd = (t.detach().tolist() for t in (D.enc.weight, D.enc.bias, D.dec.weight, D.dec.bias))
    energies, codes, grad_bd = [], [], [0.0] * 6
    for i in range(3):
        xi = x[i].flatten().tolist()
        h = [sum(We[r][c] * xi[c] for c in range(6)) + be[r] for r in range(2)]
        recon = [sum(Wd[r][c] * h[c] for c in range(2)) + bd[r] for r in range(6)]
        energies.append(sum((recon[d] - xi[d]) ** 2 for d in range(6)) / 6)
        codes.append(h)
        grad_bd = [grad_bd[d] + 2 * (recon[d] - xi[d]) / 6 for d in range(6)]
    energy, embedding = energy_and_embedding(D, x)
    assert_close(energy, torch.tensor(energies, dtype=f64))
    assert_close(embedding, torch.tensor(codes, dtype=f64))
    energy.sum().backward()                           # the energy trains D's decoder
    assert_close(D.dec.bias.grad, torch.tensor(grad_bd, dtype=f64))


# --- MAD-GAN (Ghosh et al. 2018, Eq. 2-3, App. B) ----------------------------------------------------------
def nll_by_hand(row: list[float], cls: int) -> float:
    """-log softmax(row)[cls]."""
    return math.log(sum(math.exp(v) for v in row)) - row[cls]


def test_madgan_d_loss_is_the_k_plus_1_way_cross_entropy_written_out():
    g = torch.Generator().manual_seed(11)
    k = 3
    real = torch.randn(5, k + 1, generator=g, dtype=f64)
    fakes = [torch.randn(b, k + 1, generator=g, dtype=f64) for b in (4, 3, 2)]
    expected = sum(nll_by_hand(r, k) for r in real.tolist()) / 5                   # real -> class k
    for i, logits in enumerate(fakes):                                              # generator i -> class i
        expected += sum(nll_by_hand(r, i) for r in logits.tolist()) / len(logits)
    assert_close(madgan_d_loss(real, fakes), torch.tensor(expected, dtype=f64))
    # closed forms: a D that cannot tell the k+1 classes apart pays (k+1)·log(k+1), a perfect one ~0
    zeros = torch.zeros(4, k + 1, dtype=f64)
    assert_close(madgan_d_loss(zeros, [zeros] * k), torch.tensor((k + 1) * math.log(k + 1), dtype=f64))
    perfect = lambda c: 50.0 * F.one_hot(torch.full((4,), c), k + 1).double()      # noqa: E731
    assert madgan_d_loss(perfect(k), [perfect(i) for i in range(k)]) < 1e-15


@pytest.mark.parametrize("real_class", [3, 1])
@pytest.mark.parametrize("saturating", [True, False])
def test_madgan_g_loss_written_out(real_class, saturating):
    g = torch.Generator().manual_seed(12)
    logits = torch.randn(6, 4, generator=g, dtype=f64) * 2
    values = []
    for row in logits.tolist():
        d_real = math.exp(row[real_class]) / sum(math.exp(v) for v in row)      # D_k(G_i(z))
        values.append(math.log(1 - d_real) if saturating else -math.log(d_real))
    assert_close(madgan_g_loss(logits, real_class, saturating), torch.tensor(sum(values) / 6, dtype=f64))


def test_madgan_diversity_term_is_the_mean_cross_generator_cosine_written_out():
    g = torch.Generator().manual_seed(13)
    k, B = 3, 2
    samples = torch.randn(k, B, 2, 2, generator=g, dtype=f64)
    total = 0.0
    for b in range(B):
        for i in range(k):
            for j in range(k):
                if i != j:
                    u, v = samples[i, b].flatten().tolist(), samples[j, b].flatten().tolist()
                    total += sum(p * q for p, q in zip(u, v)) / (math.sqrt(sum(p * p for p in u))
                                                                 * math.sqrt(sum(q * q for q in v)))
    assert_close(cross_generator_cosine(samples), torch.tensor(total / (k * (k - 1) * B), dtype=f64))


# --- MRGAN (Che et al. 2017, §3.2) ---------------------------------------------------------------------------
@pytest.mark.parametrize("geometric, mode", [(1.0, 0.1), (2.0, 0.5), (0.0, 0.5)])
def test_mode_regularizers_written_out_with_tiny_nets(geometric, mode):
    torch.manual_seed(14)
    E, G, D = nn.Linear(3, 2).double(), nn.Linear(2, 3).double(), nn.Linear(3, 1).double()
    x = torch.randn(4, 3, dtype=f64)
    adversarial = lambda r: -F.logsigmoid(D(r)).mean()          # noqa: E731 - nonsaturating L_G = -log D

    def total_of() -> torch.Tensor:
        return mode_regularizers(x, G(E(x)), adversarial, geometric, mode)[0]

    total, mse, mode_term = mode_regularizers(x, G(E(x)), adversarial, geometric, mode)
    recon = G(E(x)).detach()
    w, b = D.weight.detach()[0].tolist(), D.bias.item()
    d_by_hand = sum((x[i, d].item() - recon[i, d].item()) ** 2 for i in range(4) for d in range(3)) / 12
    logits = [sum(wd * r for wd, r in zip(w, recon[i].tolist())) + b for i in range(4)]
    mode_by_hand = sum(-math.log(1 / (1 + math.exp(-s))) for s in logits) / 4      # -log D(G(E(x)))
    assert_close(mse, torch.tensor(d_by_hand, dtype=f64))
    assert_close(mode_term, torch.tensor(mode_by_hand, dtype=f64))
    assert_close(total, torch.tensor(geometric * d_by_hand + mode * mode_by_hand, dtype=f64))
    # both regularizers train G and E: autograd agrees with a central finite difference
    total.backward()
    for param, index in ((E.weight, (0, 1)), (G.bias, (2,)), (G.weight, (1, 0))):
        h = 1e-6
        with torch.no_grad():
            param[index] += h
            up = total_of().item()
            param[index] -= 2 * h
            down = total_of().item()
            param[index] += h
        assert_close(param.grad[index].item(), (up - down) / (2 * h), rtol=1e-6, atol=1e-8)


# --- Unrolled GAN's pieces (Metz et al. 2016, Eq. 6-7) -------------------------------------------------------
def small_D() -> nn.Sequential:
    D = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.LeakyReLU(0.2), nn.Linear(4, 1)).double()
    with torch.no_grad():
        D[1].running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        D[1].running_var.copy_(torch.tensor([0.5, 2.0, 1.0, 1.5]))
    return D


def test_functional_discriminator_with_the_modules_own_tensors_is_its_forward():
    torch.manual_seed(15)
    D = small_D().eval()
    x = torch.randn(5, 3, dtype=f64)
    f = functional_discriminator(D, dict(D.named_parameters()), dict(D.named_buffers()))
    assert_close(f(x), D(x))


@pytest.mark.parametrize("train", [False, True])
def test_functional_discriminator_with_replaced_tensors_is_a_module_set_by_hand(train):
    torch.manual_seed(16)
    D = small_D().train(train)
    before = {n: t.clone() for n, t in D.state_dict().items()}
    params = {n: torch.randn_like(p).requires_grad_() for n, p in D.named_parameters()}
    buffers = {"1.running_mean": torch.tensor([0.4, 0.0, -0.5, 0.2], dtype=f64),
               "1.running_var": torch.tensor([1.5, 0.3, 0.8, 2.5], dtype=f64),
               "1.num_batches_tracked": torch.tensor(0)}
    twin = copy.deepcopy(D)
    with torch.no_grad():
        for n, p in twin.named_parameters():
            p.copy_(params[n])
        for n, b in twin.named_buffers():
            b.copy_(buffers[n])
    x = torch.randn(6, 3, dtype=f64)
    out = functional_discriminator(D, params, {n: b.clone() for n, b in buffers.items()})(x)
    reference = twin(x)
    assert_close(out, reference)
    if not train:   # eval-mode batch norm written out: (h - μ_run) / sqrt(σ²_run + eps) · γ + β
        h = x @ params["0.weight"].T + params["0.bias"]
        h = (h - buffers["1.running_mean"]) / (buffers["1.running_var"] + 1e-5).sqrt() * params["1.weight"] \
            + params["1.bias"]
        assert_close(out, F.leaky_relu(h, 0.2) @ params["3.weight"].T + params["3.bias"])
    # gradients reach the given parameters, as they reach the hand-set module's
    grads = torch.autograd.grad(out.sum(), list(params.values()))
    reference.sum().backward()
    for (n, p), g in zip(twin.named_parameters(), grads):
        assert_close(g, p.grad, msg=f"gradient of {n}")
    for n, t in D.state_dict().items():   # D's own tensors are not touched
        assert torch.equal(t, before[n]), f"D's {n} changed"


def test_sgd_step_is_theta_minus_lr_grad():
    theta = torch.tensor([1.0, -2.0, 0.5], dtype=f64)
    grad = torch.tensor([0.2, 0.4, -1.0], dtype=f64)
    assert_close(sgd_step(theta, grad, 0.1), torch.tensor([0.98, -2.04, 0.6], dtype=f64))
    p = theta.clone().requires_grad_()                   # the same as one step of torch's plain SGD
    p.grad = grad.clone()
    torch.optim.SGD([p], lr=0.1).step()
    assert_close(sgd_step(theta, grad, 0.1), p.detach())


def test_sgd_step_is_differentiable_through_the_gradient():
    # θ' = θ - η ∇f(θ) with f = ½ θᵀAθ has dθ'/dθ = I - ηA (what the unroll's second term needs)
    A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=f64)
    lr = 0.3

    def step(theta):
        (g,) = torch.autograd.grad(0.5 * theta @ A @ theta, theta, create_graph=True)
        return sgd_step(theta, g, lr)

    jac = torch.autograd.functional.jacobian(step, torch.tensor([0.7, -1.2], dtype=f64), create_graph=True)
    assert_close(jac, torch.eye(2, dtype=f64) - lr * A)
