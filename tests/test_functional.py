"""gantricks.functional and gantricks.nn: the techniques in a hand-written loop give what GAN.step gives,
every public name cites its paper, the unroll without a GAN is the scheme's and a torch optimizer's."""
import copy
import re

import pytest
import torch
from conftest import tiny_nets
from torch.testing import assert_close

import gantricks as gt
import gantricks.functional as gf
import gantricks.nn as gnn
from gantricks.errors import ConfigError
from gantricks.functional import (minimax_d, nonsaturating_g, r1_penalty, smooth_real_targets,  # noqa: F401
                                  unrolled_discriminator, unrolled_generator_loss, wgan_gp_penalty)
from gantricks.nn import ReplayBuffer, ema_update

PAPER = re.compile(r"arXiv:\d{4}\.\d{4,5}|[A-Z]\S+ (et al\.|& [A-Z]\S+) \d{4}|ganhacks")


@pytest.mark.parametrize("module, name", [(m, n) for m in (gf, gnn) for n in m.__all__])
def test_every_public_name_is_documented_with_its_paper(module, name):
    doc = getattr(module, name).__doc__ or ""
    assert doc.strip(), f"{module.__name__}.{name} has no docstring"
    assert PAPER.search(doc), f"{module.__name__}.{name}'s docstring names no paper: {doc[:100]!r}"


def test_public_names_are_the_modules_own():
    for module in (gf, gnn):
        public = {n for n, v in vars(module).items() if not n.startswith("_") and callable(v)
                  and getattr(v, "__module__", "").startswith("gantricks")}
        assert public == set(module.__all__), f"{module.__name__}: __all__ and its names differ"


# --- the README's loop ------------------------------------------------------------------------------
GAMMA, SMOOTH, DECAY, K = 1.0, 0.9, 0.9, 2


def d_loss_fn(D, real, fake):
    """Non-saturating D loss with one-sided label smoothing and the R1 penalty."""
    ones, zeros = torch.ones(len(real)), torch.zeros(len(fake))
    penalty, _ = r1_penalty(D, real)
    return minimax_d(D(real), D(fake), smooth_real_targets(ones, SMOOTH), zeros) + GAMMA / 2 * penalty


def g_loss_fn(D, real, fake):
    return nonsaturating_g(D(fake), torch.ones(len(fake)))


def own_loop(G, D, batches, z_dim=2):
    """The loop of README "In your own loop": unrolled G loss, label smoothing, R1, EMA of G."""
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    G_ema = copy.deepcopy(G).requires_grad_(False).eval()
    for real in batches:
        fake = G(torch.randn(len(real), z_dim))
        g_loss = unrolled_generator_loss(D, opt_d, d_loss_fn, g_loss_fn, real, fake, k=K)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        d_loss = d_loss_fn(D, real, fake.detach())
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        ema_update(G_ema, G, DECAY)
    return G_ema


def test_own_loop_equals_gan_step():
    G1, D1 = tiny_nets()
    G2, D2, G0 = copy.deepcopy(G1), copy.deepcopy(D1), copy.deepcopy(G1)
    batches = [torch.randn(16, 2) * 0.5 + 1 for _ in range(4)]
    gan = gt.GAN(G1, D1, z_dim=2, lr_g=1e-3, lr_d=1e-3, scheme=f"unrolled:k={K}",
                 tricks=[f"label-smoothing:real={SMOOTH}", f"r1:gamma={GAMMA}", f"ema:decay={DECAY}"])
    ema = gan.sampling_generator          # the EMA copy starts from G as built, as the loop's does
    torch.manual_seed(5)
    for real in batches:
        gan.step(real)
    torch.manual_seed(5)
    G_ema = own_loop(G2, D2, batches)
    for a, b in zip([*G1.parameters(), *D1.parameters(), *ema.parameters()],
                    [*G2.parameters(), *D2.parameters(), *G_ema.parameters()]):
        assert_close(a, b)
    assert not torch.allclose(ema[0].weight, G0[0].weight) and not torch.allclose(ema[0].weight, G1[0].weight)


def test_own_loop_differs_without_the_unroll():
    """The comparison above can fail: the same loop with k=0 ends elsewhere."""
    G1, D1 = tiny_nets()
    G2, D2 = copy.deepcopy(G1), copy.deepcopy(D1)
    batches = [torch.randn(16, 2) * 0.5 + 1 for _ in range(3)]
    gan = gt.GAN(G1, D1, z_dim=2, lr_g=1e-3, lr_d=1e-3, scheme="unrolled:k=0",
                 tricks=[f"label-smoothing:real={SMOOTH}", f"r1:gamma={GAMMA}"])
    torch.manual_seed(5)
    for real in batches:
        gan.step(real)
    torch.manual_seed(5)
    own_loop(G2, D2, batches)
    assert not torch.allclose(next(G1.parameters()), next(G2.parameters()))


# --- the unroll without a GAN -------------------------------------------------------------------------
def warmed_gan(spec: str) -> gt.GAN:
    G, D = tiny_nets()
    gan = gt.GAN(G, D, z_dim=2, lr_d=0.02, scheme=spec)
    for _ in range(3):
        gan.step(torch.randn(16, 2) + 1)
    return gan


def plain_d_loss(D, real, fake):
    return minimax_d(D(real), D(fake), torch.ones(len(real)), torch.zeros(len(fake)))


@pytest.mark.parametrize("spec, create_graph", [("unrolled:k=3", True), ("lookahead:k=3", False),
                                                ("unrolled:k=2,optimizer=sgd,lr=0.1", True)])
def test_unrolled_loss_without_a_gan_is_the_schemes(spec, create_graph):
    gan = warmed_gan(spec)
    real, z = torch.randn(16, 2) + 1, torch.randn(16, 2)
    with gan.frozen("D"):
        fake = gan.G(z)
        expected = gan.scheme.generator_loss(gan, fake, real, lambda: real)[0]
        expected_grad = torch.autograd.grad(expected, list(gan.G.parameters()))
    fake = gan.G(z)
    update = "sgd" if "sgd" in spec else "optimizer"
    loss = unrolled_generator_loss(gan.D, gan.optimizers["D"], plain_d_loss, g_loss_fn, real, fake,
                                   k=gan.scheme.k, create_graph=create_graph, update=update, lr=gan.scheme.lr)
    assert_close(loss, expected)
    for a, b in zip(torch.autograd.grad(loss, list(gan.G.parameters())), expected_grad):
        assert_close(a, b)
    against_d = g_loss_fn(gan.D, real, fake)
    assert not torch.allclose(loss, against_d)          # the unroll changed D: the test can fail


@pytest.mark.parametrize("make_opt", [lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.5, 0.9)),
                                      lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
                                      lambda p: torch.optim.SGD(p, lr=0.1)], ids=["adam", "adamw", "sgd"])
def test_unrolled_discriminator_is_k_steps_of_the_optimizer(make_opt):
    """Against an independent reference: a copy of D stepped k times by a copy of its torch optimizer."""
    _, D = tiny_nets()
    opt = make_opt(D.parameters())
    real, fake = torch.randn(16, 2) + 1, torch.randn(16, 2)
    for _ in range(2):                  # a non-trivial optimizer state to start from
        opt.zero_grad()
        plain_d_loss(D, real, fake).backward()
        opt.step()
    state = copy.deepcopy(D.state_dict())
    D_k = unrolled_discriminator(D, opt, plain_d_loss, real, fake, k=3)
    D_ref = copy.deepcopy(D)
    opt_ref = make_opt(D_ref.parameters())
    opt_ref.load_state_dict(opt.state_dict())
    for _ in range(3):
        opt_ref.zero_grad()
        plain_d_loss(D_ref, real, fake).backward()
        opt_ref.step()
    x = torch.randn(32, 2)
    assert_close(D_k(x), D_ref(x))
    assert all(torch.equal(v, state[n]) for n, v in D.state_dict().items())   # D itself untouched
    assert not torch.allclose(D(x), D_ref(x))


def test_unrolled_loss_refuses_other_optimizers():
    _, D = tiny_nets()
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    for opt in (torch.optim.RMSprop(D.parameters()), torch.optim.Adagrad(D.parameters())):
        with pytest.raises(ConfigError, match=rf"SGD or Adam/AdamW \(sgd or adam\), got {type(opt).__name__}"):
            unrolled_generator_loss(D, opt, plain_d_loss, g_loss_fn, real, fake, k=2)
    with pytest.raises(ConfigError, match="momentum"):
        unrolled_discriminator(D, torch.optim.SGD(D.parameters(), lr=0.1, momentum=0.9), plain_d_loss, real, fake, 1)
    # update="sgd" takes plain gradient steps whatever the optimizer
    unrolled_discriminator(D, torch.optim.RMSprop(D.parameters()), plain_d_loss, real, fake, 1, update="sgd")


# --- the other pieces a loop takes -------------------------------------------------------------------
def test_replay_buffer_is_the_tricks():
    """The replay trick and a ReplayBuffer on the same batches and seed give the same mixed batches."""
    trick = gt.GAN(*tiny_nets(), z_dim=2, tricks=["replay:size=20,fraction=0.5"]).trick("replay")
    buffer = ReplayBuffer(size=20, fraction=0.5)
    for i in range(4):
        fake = torch.randn(8, 2)
        torch.manual_seed(i)
        _, a = trick.d_inputs(None, fake, None, "D")
        torch.manual_seed(i)
        b = buffer(fake)
        assert torch.equal(a, b)
    assert len(buffer.buffer) == 20 and not torch.equal(b, fake)
    with pytest.raises(ConfigError, match="fraction"):
        ReplayBuffer(fraction=0)


def test_wgan_gp_penalty_on_a_linear_critic():
    """A linear critic's input gradient is its weight everywhere: the penalty is (‖w‖ - 1)²."""
    D = torch.nn.Linear(3, 1)
    penalty, norms = wgan_gp_penalty(D, torch.randn(8, 3), torch.randn(8, 3))
    w = D.weight.detach().norm()
    assert_close(norms, w.expand(8))
    assert_close(penalty, (w - 1) ** 2)


def test_unroll_refuses_bad_settings():
    _, D = tiny_nets()
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    opt = torch.optim.Adam(D.parameters())
    with pytest.raises(ConfigError, match="k >= 0"):
        unrolled_discriminator(D, opt, plain_d_loss, real, fake, -1)
    with pytest.raises(ConfigError, match="optimizer or sgd"):
        unrolled_discriminator(D, opt, plain_d_loss, real, fake, 1, update="rmsprop")
    with pytest.raises(ConfigError, match="amsgrad"):
        unrolled_discriminator(D, torch.optim.Adam(D.parameters(), amsgrad=True), plain_d_loss, real, fake, 1)
