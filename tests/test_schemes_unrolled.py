"""Unrolled GAN and the look-ahead D: exact gradient by finite differences, k = 0 is the
standard scheme, D untouched by G's step, tricks apply inside the unroll."""
import copy
import json
import math

import pytest
import torch
from torch import nn

import gantricks
from gantricks import GAN
from gantricks.build import build_data, build_gan
from gantricks.cli import main
from gantricks.config import TrainConfig
from gantricks.errors import ConfigError
from gantricks.registry import schemes, tricks
from gantricks.schemes.unrolled import Lookahead, Unrolled, adam_step
from gantricks.tricks.base import TARGETS, Trick

from conftest import tiny_nets


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def smooth_nets(width: int = 6):
    """Tiny tanh nets: smooth everywhere, so central differences are exact to O(h²)."""
    G = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2))
    D = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 1))
    return G, D


def warmed_gan(scheme, lr_d=0.05, steps=3, **kw) -> GAN:
    """A GAN whose D has taken a few Adam steps, so the unroll starts from a non-trivial Adam state."""
    G, D = smooth_nets()
    gan = GAN(G, D, z_dim=2, scheme=scheme, lr_d=lr_d, lr_g=0.01, **kw)
    data = torch.randn(16, 2) * 0.5 + 1.0
    for _ in range(steps):
        gan.step(data)
    return gan


def flat_grad(loss, params):
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])


def central_differences(f, params, h=1e-6):
    out = []
    for p in params:
        flat = p.data.view(-1)     # the unroll inside f needs autograd: no torch.no_grad here
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + h
            up = f().item()
            flat[i] = old - h
            down = f().item()
            flat[i] = old
            out.append((up - down) / (2 * h))
    return torch.tensor(out)


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


# --- the exact gradient (Eq. 12, both terms) ---------------------------------------------------
@pytest.mark.parametrize("options", [dict(optimizer="sgd", lr=1.0), dict(optimizer="adam"),
                                     dict(optimizer="adam", fresh_data=True), dict(optimizer="sgd", lr=1.0, saddle=True)],
                         ids=["sgd", "adam", "adam-fresh", "sgd-saddle"])
def test_exact_gradient_matches_finite_differences(float64, options):
    scheme = Unrolled(k=3, **options)
    gan = warmed_gan(scheme)
    data_gen = torch.Generator().manual_seed(5)
    real = torch.randn(16, 2, generator=data_gen)
    z = torch.randn(16, 2, generator=data_gen)

    def g_loss():
        torch.manual_seed(7)     # fresh_data draws noise and data: the same each evaluation
        source = torch.Generator().manual_seed(8)
        return scheme.generator_loss(gan, gan.G(z), real, lambda: torch.randn(16, 2, generator=source))[0]

    params = list(gan.G.parameters())
    exact = flat_grad(g_loss(), params)
    fd = central_differences(g_loss, params)
    assert rel(exact, fd) < 1e-3

    look = Lookahead(**scheme.__dict__)
    torch.manual_seed(7)
    source = torch.Generator().manual_seed(8)
    first_order = flat_grad(look.generator_loss(gan, gan.G(z), real,
                                                lambda: torch.randn(16, 2, generator=source))[0], params)
    assert rel(first_order, fd) > 0.05   # the second term matters here, so the two must differ


@pytest.mark.parametrize("trick, loss", [("r1", "nonsaturating"), ("dragan", "nonsaturating"),
                                         ("wgan-gp", "wasserstein")])
def test_exact_gradient_with_a_gradient_penalty(float64, trick, loss):
    """Penalties (third derivatives through the unroll) keep the gradient exact, by finite differences.

    Regression: wgan-gp's interpolates once detached the fake batch, which cut the path
    fake -> interpolates -> penalty -> unrolled D (harmless in a D step, wrong in the unroll)."""
    scheme = Unrolled(k=2, optimizer="sgd", lr=0.05)
    G, D = smooth_nets()
    gan = GAN(G, D, z_dim=2, scheme=scheme, loss=loss, tricks=[trick], lr_d=0.05, lr_g=0.01)
    real, z = torch.randn(16, 2), torch.randn(16, 2)

    def g_loss():
        torch.manual_seed(7)     # the same random interpolates / perturbations each evaluation
        return scheme.generator_loss(gan, gan.G(z), real, None)[0]

    params = list(gan.G.parameters())
    assert rel(flat_grad(g_loss(), params), central_differences(g_loss, params)) < 1e-3


@pytest.mark.parametrize("optimizer, unroll_lr", [("sgd", 0.5), ("adam", None)])
def test_lookahead_is_the_gradient_against_a_detached_k_step_D(float64, optimizer, unroll_lr):
    """Reference: a deep copy of D trained k steps by torch's own optimizer (Adam from D's real state)."""
    k = 3
    gan = warmed_gan(Lookahead(k=k, optimizer=optimizer, lr=unroll_lr))
    real, z = torch.randn(16, 2), torch.randn(16, 2)
    params = list(gan.G.parameters())
    first_order = flat_grad(gan.scheme.generator_loss(gan, gan.G(z), real, None)[0], params)

    D = copy.deepcopy(gan.D)
    if optimizer == "adam":
        opt = torch.optim.Adam(D.parameters(), lr=gan.lr["D"], betas=gan.betas)
        opt.load_state_dict(gan.optimizers["D"].state_dict())
        assert opt.state_dict()["state"][0]["step"] > 0
    else:
        opt = torch.optim.SGD(D.parameters(), lr=unroll_lr)
    fake = gan.G(z).detach()
    for _ in range(k):
        opt.zero_grad()
        gan.discriminator_loss(D, real, fake)[0].backward()
        opt.step()
    for p in D.parameters():
        p.requires_grad_(False)
    reference = flat_grad(gan.generator_loss(D, gan.G(z), real)[0], params)
    torch.testing.assert_close(first_order, reference)

    exact = flat_grad(Unrolled(k=k, optimizer=optimizer, lr=unroll_lr).generator_loss(gan, gan.G(z), real, None)[0],
                      params)
    assert rel(exact, reference) > 0.05


@pytest.mark.parametrize("opt_class, weight_decay", [(torch.optim.Adam, 0.0), (torch.optim.Adam, 0.1),
                                                     (torch.optim.AdamW, 0.1)])
def test_adam_step_is_torch_adam(float64, opt_class, weight_decay):
    p = torch.randn(5, 3, requires_grad=True)
    opt = opt_class([p], lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=weight_decay)
    q, m, v = p.detach().clone(), torch.zeros(5, 3), torch.zeros(5, 3)
    for step in range(1, 5):
        grad = torch.randn(5, 3)
        grad[0] = 0.0               # a unit without gradient: v stays 0, the step must stay finite
        p.grad = grad.clone()
        opt.step()
        q, m, v = adam_step(q, grad, m, v, step, 0.01, 0.8, 0.99, 1e-8, weight_decay, opt_class is torch.optim.AdamW)
        torch.testing.assert_close(q, p.detach(), rtol=1e-12, atol=1e-12)


def test_adam_unroll_is_finite_where_a_unit_gets_no_gradient(float64):
    """sqrt(v) at v = 0 has an infinite derivative; the unroll must not turn it into NaN."""
    gan = warmed_gan(Unrolled(k=2), steps=0)
    with torch.no_grad():
        gan.D[0].weight[0].zero_()   # one dead hidden unit: tanh'(0)·0-weight output row
        gan.D[2].weight[0, 0] = 0.0
    params = list(gan.G.parameters())
    grad = flat_grad(gan.scheme.generator_loss(gan, gan.G(torch.randn(8, 2)), torch.randn(8, 2), None)[0], params)
    assert torch.isfinite(grad).all()


# --- the authors' form: D's update is the first of the k unrolled steps -------------------------------
@pytest.mark.parametrize("k", [1, 3])
def test_simultaneous_unroll_is_the_notebook_step(float64, k):
    """One step of ``unrolled`` (default, simultaneous) against a hand-run reference of the notebook's
    step: D takes one torch Adam step at (θ_G, θ_D) on G's pre-update fakes, and G's gradient is
    the total derivative (central differences) of G's loss against a copy of D trained k torch Adam
    steps, the first being D's own update."""
    torch.manual_seed(0)
    G, D = smooth_nets()
    gan = GAN(G, D, z_dim=2, scheme=f"unrolled:k={k}", loss="minimax", lr_d=0.05, lr_g=0.01)
    G0, D0 = copy.deepcopy(G), copy.deepcopy(D)
    real = torch.randn(16, 2) * 0.5 + 1.0
    torch.manual_seed(11)
    gan.step(real)
    torch.manual_seed(11)
    z = torch.randn(16, 2)       # the step's only draw: G's batch, which D's update sees too

    def trained_copy(G_now, steps):
        D_c = copy.deepcopy(D0)
        opt = torch.optim.Adam(D_c.parameters(), lr=0.05, betas=gan.betas)
        for _ in range(steps):
            opt.zero_grad()
            gan.discriminator_loss(D_c, real, G_now(z).detach())[0].backward()
            opt.step()
        return D_c

    torch.testing.assert_close(gan.D.state_dict(), trained_copy(G0, 1).state_dict())

    def g_loss():
        return gan.generator_loss(trained_copy(G0, k), G0(z), real)[0]
    fd = central_differences(g_loss, list(G0.parameters()))
    ours = torch.cat([p.grad.flatten() for p in gan.G.parameters()])
    assert rel(ours, fd) < 1e-4


def test_simultaneous_standard_step_uses_one_state():
    """standard:simultaneous=true: G's gradient against D before its update, D's on G's pre-update fakes."""
    torch.manual_seed(0)
    G, D = tiny_nets()
    gan = GAN(G, D, z_dim=2, scheme="standard:simultaneous=true", lr_d=0.05, lr_g=0.05)
    G0, D0 = copy.deepcopy(G), copy.deepcopy(D)
    real = torch.randn(32, 2)
    torch.manual_seed(4)
    gan.step(real)
    torch.manual_seed(4)
    z = torch.randn(32, 2)
    d_grads = torch.autograd.grad(gan.discriminator_loss(D0, real, G0(z).detach())[0], list(D0.parameters()))
    for p in D0.parameters():
        p.requires_grad_(False)
    g_grads = torch.autograd.grad(gan.generator_loss(D0, G0(z), real)[0], list(G0.parameters()))
    torch.testing.assert_close([p.grad for p in gan.D.parameters()], list(d_grads))
    torch.testing.assert_close([p.grad for p in gan.G.parameters()], list(g_grads))


# --- k = 0 is the standard scheme -----------------------------------------------------------------
@pytest.mark.parametrize("scheme, standard", [
    ("unrolled:k=0", "standard:simultaneous=true"),
    ("unrolled:k=0,optimizer=sgd,fresh_data=true", "standard:simultaneous=true"),
    ("lookahead:k=0", "standard:simultaneous=true"),
    ("unrolled:k=0,simultaneous=false", "standard")])
def test_k0_step_equals_standard(scheme, standard):
    def run(name):
        torch.manual_seed(0)
        G, D = tiny_nets()
        gan = GAN(G, D, z_dim=2, scheme=name, n_critic=2)
        data = torch.Generator().manual_seed(3)
        for _ in range(3):
            gan.step(lambda: torch.randn(32, 2, generator=data))
        return gan

    ours, standard = run(scheme), run(standard)
    for name in ("G", "D"):
        torch.testing.assert_close(ours.modules[name].state_dict(), standard.modules[name].state_dict(), rtol=0, atol=0)
    torch.testing.assert_close(ours.optimizers["G"].state_dict()["state"], standard.optimizers["G"].state_dict()["state"],
                               rtol=0, atol=0)


# --- D's parameters, buffers and optimizer state are not touched by G's step ------------------------
def _d_with_buffers():
    """D with batch norm (running stats) and torch's spectral norm (power-iteration vectors)."""
    return nn.Sequential(nn.utils.parametrizations.spectral_norm(nn.Linear(2, 16)), nn.BatchNorm1d(16),
                         nn.LeakyReLU(0.2), nn.Linear(16, 1))


@pytest.mark.parametrize("scheme", ["unrolled:k=3", "unrolled:k=2,optimizer=sgd,fresh_data=true", "lookahead:k=3"])
def test_generator_step_leaves_D_untouched(scheme):
    G, _ = tiny_nets()
    gan = GAN(G, _d_with_buffers(), z_dim=2, scheme=scheme)
    next_real = lambda: torch.randn(32, 2)  # noqa: E731
    gan.step(next_real)                     # Adam state exists
    logs: dict = {}
    real = gan.scheme.discriminator_updates(gan, next_real, logs, 1)
    d_state = copy.deepcopy(gan.D.state_dict())
    d_opt = copy.deepcopy(gan.optimizers["D"].state_dict())
    d_grads = [p.grad.clone() for p in gan.D.parameters()]
    g_before = copy.deepcopy(gan.G.state_dict())
    gan.scheme.generator_update(gan, real, next_real, logs)

    torch.testing.assert_close(gan.D.state_dict(), d_state, rtol=0, atol=0)
    torch.testing.assert_close(gan.optimizers["D"].state_dict(), d_opt, rtol=0, atol=0)
    torch.testing.assert_close([p.grad for p in gan.D.parameters()], d_grads, rtol=0, atol=0)
    assert all(p.requires_grad for p in gan.D.parameters())
    assert not torch.equal(gan.G.state_dict()["0.weight"], g_before["0.weight"])   # G did move
    assert math.isfinite(logs["unroll_d_loss"]) and math.isfinite(logs["g_loss"])
    # the same forward in train mode *does* move the buffers: the check above can fail
    gan.D(torch.randn(8, 2))
    assert not torch.equal(gan.D.state_dict()["1.running_mean"], d_state["1.running_mean"])


def test_trick_state_is_restored_after_the_unroll():
    class Remember(Trick):
        """Keeps the last fake batch D saw (stands for a replay buffer)."""
        name = "remember"

        def __init__(self):
            self.last = torch.zeros(())

        def d_inputs(self, real, fake, gan, phase):
            if phase == "D":
                self.last = fake.detach().sum()
            return real, fake

        def state_dict(self):
            return {"last": self.last}

        def load_state_dict(self, state):
            self.last = state["last"]

    G, D = tiny_nets()
    trick = Remember()
    gan = GAN(G, D, z_dim=2, scheme="unrolled:k=2", tricks=[trick])
    logs: dict = {}
    real = gan.scheme.discriminator_updates(gan, lambda: torch.randn(16, 2), logs, 1)
    seen_by_D = trick.last.clone()
    gan.scheme.generator_update(gan, real, lambda: torch.randn(16, 2), logs)
    assert torch.equal(trick.last, seen_by_D)


# --- options ------------------------------------------------------------------------------------
@pytest.mark.parametrize("simultaneous, fresh, expected", [
    (True, False, 2), (True, True, 2 + 2 * 2),      # the first unroll step is D's own update, on its batch
    (False, False, 2), (False, True, 2 + 2 * 3)])
def test_fresh_data_draws_k_more_batches(simultaneous, fresh, expected):
    if True:
        G, D = tiny_nets()
        gan = GAN(G, D, z_dim=2, scheme=f"unrolled:k=3,fresh_data={fresh},simultaneous={simultaneous}")
        calls = []
        gan.step(lambda: calls.append(1) or torch.randn(16, 2))
        gan.step(lambda: calls.append(1) or torch.randn(16, 2))
        assert len(calls) == expected


@pytest.mark.parametrize("spec, message", [
    ("unrolled:k=-1", "k must be >= 0"),
    ("unrolled:optimizer=rmsprop", "must be one of sgd, adam"),
    ("unrolled:lr=0", "lr must be a positive number"),
    ("lookahead:steps=3", "has no option 'steps'"),
    ("unrolled:k=many", "must be an integer"),
])
def test_bad_options(spec, message):
    with pytest.raises(ConfigError, match=message):
        schemes.build(spec)


def test_saddle_refuses_tricks_with_g_terms():
    class GTerm(Trick):
        name = "g-term"

        def g_terms(self, ctx):
            return {"zero": ctx.fake.sum() * 0}

    G, D = tiny_nets()
    with pytest.raises(ConfigError, match="drops the G terms of trick 'g-term'"):
        GAN(G, D, z_dim=2, scheme="unrolled:saddle=true", tricks=[GTerm()])
    GAN(G, D, z_dim=2, scheme="unrolled", tricks=[GTerm()]).step(torch.randn(16, 2))


def test_adam_unroll_needs_an_adam_D():
    G, D = tiny_nets()
    with pytest.raises(ConfigError, match="D's optimizer is SGD; use optimizer=sgd"):
        GAN(G, D, z_dim=2, scheme="unrolled:optimizer=adam", optimizer_d="sgd")     # refused when built
    for scheme in ("unrolled:optimizer=sgd", "unrolled"):      # the default unrolls D's own (plain) SGD
        G, D = tiny_nets()
        GAN(G, D, z_dim=2, scheme=scheme, optimizer_d="sgd").step(torch.randn(16, 2))


# --- registry smoke, the CLI, tricks ----------------------------------------------------------------
@pytest.mark.parametrize("spec", ["unrolled", "unrolled:k=2,optimizer=sgd,fresh_data=true", "lookahead:k=3",
                                  "unrolled:k=2,saddle=true"])
@pytest.mark.parametrize("loss", ["nonsaturating", "wasserstein"])
def test_registry_smoke(spec, loss):
    G, D = tiny_nets()
    gan = GAN(G, D, z_dim=2, scheme=spec, loss=loss, n_critic=2)
    for _ in range(3):
        logs = gan.step(torch.randn(32, 2))
    assert {"d_loss", "g_loss", "unroll_d_loss", "grad_norm_g"} <= set(logs)
    assert all(math.isfinite(v) for v in logs.values())
    assert gan.step_count == 3 and isinstance(gan.scheme, Unrolled)


def test_cli_train(tmp_path, capsys):
    out = tmp_path / "run"
    small = ["--generator", "mlp:width=32,depth=2", "--discriminator", "mlp:width=32,depth=2,maxout=2",
             "--batch-size", "32", "--eval-samples", "500", "--log-every", "10", "--no-progress"]
    assert main(["train", "--data", "ring8", "--scheme", "unrolled:k=5", "--steps", "20", "--out", str(out), *small]) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["step"] == 20 and 0 <= final["modes_covered"] <= 8
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("unroll_d_loss" in r for r in records if r["kind"] == "train")
    assert 'scheme = "unrolled:k=5"' in (out / "config.toml").read_text()


class Smooth(Trick):
    """One-sided label smoothing, counting how often D's targets are asked for."""
    name = "test-smooth"
    touches = (TARGETS,)
    needs_targets = True

    def __init__(self):
        self.calls = 0

    def targets(self, real_t, fake_t, gan):
        self.calls += 1
        return real_t * 0.7, fake_t


def test_target_trick_applies_inside_the_unroll(float64):
    """Targets set by a trick reach every unroll step, and change G's exact gradient."""
    k = 3
    real, z = torch.randn(16, 2), torch.randn(16, 2)
    grads = {}
    for smooth in (False, True):
        torch.manual_seed(0)
        G, D = smooth_nets()
        trick = Smooth()
        gan = GAN(G, D, z_dim=2, scheme=Unrolled(k=k, optimizer="sgd", lr=1.0), tricks=[trick] if smooth else [])
        grads[smooth] = flat_grad(gan.scheme.generator_loss(gan, gan.G(z), real, None)[0], list(gan.G.parameters()))
        if smooth:
            assert trick.calls == k
            # reference: the unrolled D by hand, SGD on the smoothed BCE (1 step per unroll step)
            Dr = copy.deepcopy(gan.D)
            opt = torch.optim.SGD(Dr.parameters(), lr=1.0)
            for _ in range(k):
                opt.zero_grad()
                bce = nn.functional.binary_cross_entropy_with_logits
                (bce(Dr(real).squeeze(1), torch.full((16,), 0.7)) +
                 bce(Dr(gan.G(z).detach()).squeeze(1), torch.zeros(16))).backward()
                opt.step()
            first_order = flat_grad(gan.generator_loss(Dr, gan.G(z), real)[0], list(gan.G.parameters()))
            look = flat_grad(Lookahead(k=k, optimizer="sgd", lr=1.0).generator_loss(gan, gan.G(z), real, None)[0],
                             list(gan.G.parameters()))
            torch.testing.assert_close(look, first_order)
    assert rel(grads[True], grads[False]) > 0.01


def _two_steps(name: str, loss: str, scheme: str) -> None:
    config = TrainConfig(data="ring8", generator="mlp:width=16,depth=1", discriminator="mlp:width=16,depth=2,maxout=2",
                         loss=loss, tricks=(name,), scheme=scheme, batch_size=16, seed=0)
    if tricks.build(name).needs_images:      # a trick that transforms images: 100 digits, the smallest DCGAN nets
        config = config.replace(data="mnist5k:n=100", generator="dcgan:width=4", discriminator="dcgan:width=4")
    sampler = build_data(config)
    gan = build_gan(config, sampler.shape)
    g_before = copy.deepcopy(gan.G.state_dict())
    for _ in range(2):
        logs = gan.step(lambda: sampler(16))
    assert all(math.isfinite(v) for v in logs.values()), logs
    assert "unroll_d_loss" in logs
    assert any(not torch.equal(v, g_before[k]) for k, v in gan.G.state_dict().items() if v.is_floating_point())


@pytest.mark.parametrize("name", tricks.names())
def test_every_trick_composes_with_unrolled(name):
    """Two unrolled steps with each registered trick, on the project's small MLPs."""
    errors = []
    for loss in ("nonsaturating", "wasserstein", "hinge"):
        try:
            _two_steps(name, loss, "unrolled:k=2")
            return
        except ConfigError as err:
            if "second derivative" in str(err):
                _two_steps(name, loss, "lookahead:k=2")     # the first-order variant must still work
                pytest.skip(f"trick {name!r}: D is not twice differentiable, so only lookahead applies: {err}")
            errors.append(str(err))
    pytest.skip(f"trick {name!r} cannot be built with the small MLPs and any loss: {errors[0]}")


def test_listed():
    assert {"unrolled", "lookahead"} <= set(gantricks.list_schemes())
    assert schemes.get("unrolled").paper.startswith("Metz et al. 2016")
