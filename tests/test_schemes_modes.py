"""Mode-collapse schemes: EBGAN (pulling-away term), MAD-GAN, MRGAN / MDGAN."""
from __future__ import annotations

import io
import itertools

import pytest
import torch
import torch.nn.functional as F
from _modes_util import one_thread  # noqa: F401  (autouse fixture)
from conftest import tiny_nets
from torch import nn

import gantricks as gt
from gantricks.build import build_gan
from gantricks.config import TrainConfig
from gantricks.errors import ConfigError
from gantricks.nets.autoencoder import ConvAutoEncoder, MLPAutoEncoder, per_sample_mse
from gantricks.registry import schemes
from gantricks.schemes.ebgan import EBGAN, margin_loss, pulling_away
from gantricks.schemes.madgan import MADGAN, cross_generator_cosine
from gantricks.schemes.mrgan import MDGAN, MRGAN


def ring(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    angle = 2 * torch.pi * torch.randint(8, (n,), generator=g) / 8
    return torch.stack([angle.cos(), angle.sin()], 1) + 0.01 * torch.randn(n, 2, generator=g)


def tiny_ae(data_dim: int = 2) -> nn.Module:
    return MLPAutoEncoder((data_dim,), width=16, depth=1, code=8)


# --- EBGAN: the pulling-away term ------------------------------------------------------------
def pt_loop(S: torch.Tensor) -> torch.Tensor:
    """f_PT by the paper's double sum, one pair at a time."""
    flat = S.flatten(1).double()
    n, total = flat.shape[0], 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                cos = flat[i] @ flat[j] / (flat[i].norm() * flat[j].norm())
                total += cos ** 2
    return total / (n * (n - 1))


@pytest.mark.parametrize("shape", [(7, 5), (4, 3, 2, 2)])
def test_pulling_away_equals_the_double_sum(shape):
    S = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(pulling_away(S), pt_loop(S))


def test_pulling_away_normalises_each_sample_not_the_batch():
    """PROTOCOLS.md: normalising along the batch dimension is a bug seen in public code."""
    S = torch.randn(6, 4, dtype=torch.float64)
    scales = torch.tensor([0.01, 1.0, 3.0, 10.0, 0.5, 100.0], dtype=torch.float64)[:, None]
    torch.testing.assert_close(pulling_away(S * scales), pulling_away(S))   # each sample's scale is irrelevant
    unit_along_batch = F.normalize(S * scales, dim=0)                       # the bug
    buggy = ((unit_along_batch @ unit_along_batch.T) ** 2).fill_diagonal_(0).sum() / 30
    assert not torch.allclose(buggy, pulling_away(S)), "the test must tell the bug apart"


def test_pulling_away_squares_the_cosines():
    """PROTOCOLS.md: summing raw cosines is a bug: anti-parallel embeddings would lower the term."""
    v, w = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([-2.0, 1.0, 0.0])    # w ⟂ v
    S = torch.stack([v, -3 * v, w])
    # ordered pairs: (v, -3v) twice with cos² = 1, the four pairs with w are 0 -> 2/6
    torch.testing.assert_close(pulling_away(S), torch.tensor(1 / 3))
    torch.testing.assert_close(pulling_away(torch.stack([v, 2 * v])), torch.tensor(1.0))
    torch.testing.assert_close(pulling_away(torch.stack([v, -v])), torch.tensor(1.0))   # unsquared: -1
    assert pulling_away(torch.eye(4)) == 0


def test_margin_loss_formula():
    real, fake = torch.tensor([0.2, 0.4]), torch.tensor([0.5, 3.0])
    torch.testing.assert_close(margin_loss(real, fake, 1.0), torch.tensor(0.3 + (0.5 + 0.0) / 2))


@pytest.mark.parametrize("shape", [(2,), (1, 16, 16), (3, 8, 8), (5, 8, 12), (4, 16)])
def test_autoencoder_net_keeps_the_shape_for_any_channel_count(shape):
    D = gt.registry.nets.build("autoencoder", role="discriminator", data_shape=shape)
    x = torch.randn(3, *shape)
    assert D(x).shape == x.shape
    assert D.encode(x).shape[0] == 3
    assert isinstance(D, MLPAutoEncoder if len(shape) == 1 else ConvAutoEncoder)


def test_autoencoder_net_errors():
    with pytest.raises(ConfigError, match="discriminator"):
        gt.registry.nets.build("autoencoder", role="generator", data_shape=(2,))
    with pytest.raises(ConfigError, match="divisible"):
        gt.registry.nets.build("autoencoder:depth=3", role="discriminator", data_shape=(3, 12, 12))


def test_ebgan_builder_swaps_the_default_mlp_for_an_autoencoder():
    gan = build_gan(TrainConfig(scheme="ebgan:margin=2,pt_weight=0.3"), (2,))
    assert isinstance(gan.D, MLPAutoEncoder)
    assert (gan.scheme.margin, gan.scheme.pt_weight) == (2.0, 0.3)
    gan = build_gan(TrainConfig(scheme="ebgan", discriminator="mlp:width=24,depth=3,maxout=1"), (2,))
    assert [m.out_features for m in gan.D.encoder if isinstance(m, nn.Linear)] == [24, 24, 24, 32]


def test_ebgan_refuses_a_logit_discriminator_and_label_tricks():
    G, D = tiny_nets()
    with pytest.raises(ConfigError, match="encode"):
        gt.GAN(G, D, z_dim=2, scheme="ebgan")
    with pytest.raises(ConfigError, match="label-smoothing"):
        gt.GAN(G, tiny_ae(), z_dim=2, scheme="ebgan", tricks=["label-smoothing"])
    with pytest.raises(ConfigError, match="margin"):
        EBGAN(margin=0)


def test_ebgan_d_separates_real_from_fake_energy_and_g_gets_the_pt_gradient():
    torch.manual_seed(0)
    G, _ = tiny_nets()
    gan = gt.GAN(G, tiny_ae(), z_dim=2, scheme="ebgan:margin=0.5", lr_d=1e-3, lr_g=1e-12)
    real = ring(64)
    first = gan.step(real)
    for _ in range(150):
        logs = gan.step(real)
    # D pulls real energies down and pushes fakes towards the margin
    assert logs["energy_real"] < 0.3 * first["energy_real"]
    assert logs["energy_fake"] > 4 * logs["energy_real"]
    assert 0 <= logs["pulling_away"] <= 1


def test_ebgan_pt_weight_enters_g_loss():
    torch.manual_seed(0)
    G, _ = tiny_nets()
    D = tiny_ae()
    gan = gt.GAN(G, D, z_dim=2, scheme="ebgan:pt_weight=0.7")
    logs = gan.step(ring(32))
    torch.testing.assert_close(logs["g_loss"], logs["energy_gen"] + 0.7 * logs["pulling_away"])
    assert logs["pulling_away"] > 0


# --- MAD-GAN ---------------------------------------------------------------------------------
def cosine_loop(samples: torch.Tensor) -> torch.Tensor:
    k, b = samples.shape[:2]
    values = [F.cosine_similarity(samples[i, n].flatten(), samples[j, n].flatten(), dim=0)
              for i, j in itertools.permutations(range(k), 2) for n in range(b)]
    return torch.stack(values).mean()


def test_cross_generator_cosine_equals_a_loop():
    samples = torch.randn(3, 5, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(cross_generator_cosine(samples), cosine_loop(samples))
    same = torch.randn(1, 4, 3).expand(3, 4, 3)
    torch.testing.assert_close(cross_generator_cosine(same), torch.tensor(1.0))
    torch.testing.assert_close(cross_generator_cosine(torch.stack([same[0], -same[0]])), torch.tensor(-1.0))


def madgan(k: int = 3, d: nn.Module | None = None, **options) -> gt.GAN:
    G, D = tiny_nets(outputs=k + 1)
    opts = ",".join(f"{key}={v}" for key, v in options.items())
    return gt.GAN(G, d or D, z_dim=2, scheme=f"madgan:generators={k}" + ("," + opts if opts else ""))


def test_madgan_builds_d_with_k_plus_1_outputs_and_k_generators():
    gan = build_gan(TrainConfig(scheme="madgan:generators=3"), (2,))
    assert gan.D.head.out_features == 4
    assert [n for n in gan.modules if n.startswith("G")] == ["G", "G1", "G2"]
    assert set(gan.optimizers) == {"G", "G1", "G2", "D"}
    linear = lambda g: [m.weight for m in g.modules() if isinstance(m, nn.Linear)]  # noqa: E731
    assert all(not torch.equal(a, b) for a, b in zip(linear(gan.G), linear(gan.modules["G1"])))   # own init
    with pytest.raises(ConfigError, match="4 outputs"):
        build_gan(TrainConfig(scheme="madgan:generators=3", discriminator="mlp:outputs=2"), (2,))
    G, D = tiny_nets()                     # a user's D with one output
    gan = gt.GAN(G, D, z_dim=2, scheme="madgan:generators=3")
    with pytest.raises(ConfigError, match=r"\(B, 4\)"):
        gan.step(ring(8))


def test_madgan_each_generator_gets_gradient_only_through_its_own_samples():
    """D has batch norm, so a D fed all generators' samples in one batch would leak gradient."""
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.LeakyReLU(0.2), nn.Linear(16, 4))
    gan = madgan(3, D)
    grads: dict[str, list[torch.Tensor]] = {}

    def capture(name, loss, logs=None):     # backward only; no optimizer step, D stays as it is
        for module in ([name] if isinstance(name, str) else name):
            gan.modules[module].zero_grad(set_to_none=True)
        loss.backward()
        if name != "D":
            grads.update({n: [p.grad.clone() for p in gan.modules[n].parameters()] for n in name})
    gan.update = capture

    def g_grads():
        torch.manual_seed(1)
        gan.step(ring(16))
        return {n: g for n, g in grads.items()}
    before = g_grads()
    assert all(any(g.abs().sum() > 0 for g in gs) for gs in before.values())   # every generator learns
    with torch.no_grad():
        for p in gan.modules["G2"].parameters():
            p.add_(torch.randn_like(p))
    after = g_grads()
    for n in ("G", "G1"):
        for a, b in zip(before[n], after[n]):
            torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in zip(before["G2"], after["G2"]))


def test_madgan_diversity_term_is_in_the_generators_loss():
    torch.manual_seed(0)
    gan = madgan(2, diversity=2.0)
    logs = gan.step(ring(16))
    torch.testing.assert_close(torch.tensor(logs["g_loss"]),
                               torch.tensor(logs["g_adv"] + 2.0 * logs["generator_similarity"]))


def test_madgan_samples_come_from_all_generators_uniformly_and_reproducibly():
    torch.manual_seed(0)
    gan = madgan(3)
    gens = [gan.modules[n] for n in ("G", "G1", "G2")]
    state = torch.get_rng_state()
    x = gan.sample(600, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)             # sampling leaves the training RNG alone
    z = gan.noise(600, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        outs = torch.stack([g(z) for g in gens])                  # (3, 600, 2)
    match = (outs == x[None]).all(dim=2)                          # which generator made each sample
    assert bool((match.sum(0) == 1).all())
    counts = match.sum(1)
    assert bool((counts > 150).all()) and int(counts.sum()) == 600, counts
    torch.testing.assert_close(gan.sample(600, generator=torch.Generator().manual_seed(5)), x)


def test_madgan_share_uses_gs_first_layers_and_optimizes_them_once():
    gan = build_gan(TrainConfig(scheme="madgan:generators=2,share=2"), (2,))
    G, G1 = gan.G.net, gan.modules["G1"].net
    assert G1[0].target is G[0] and G1[4].target is G[4]        # two Linear+BN+ReLU blocks shared
    assert isinstance(G1[6], nn.Linear) and G1[6] is not G[6]
    own = {id(p) for p in gan.optimizers["G1"].param_groups[0]["params"]}
    assert own.isdisjoint(id(p) for p in gan.optimizers["G"].param_groups[0]["params"])
    before = G[0].weight.clone()
    gan.step(ring(16))
    assert not torch.equal(before, G[0].weight)
    with pytest.raises(ConfigError, match="share"):
        build_gan(TrainConfig(scheme="madgan:generators=2,share=5"), (2,))


def test_madgan_checkpoint_carries_every_generator():
    torch.manual_seed(0)
    gan = madgan(3)
    gan.step(ring(8))
    buffer = io.BytesIO()
    torch.save(gan.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    other = madgan(3)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    for name in ("G1", "G2"):
        for a, b in zip(gan.modules[name].parameters(), other.modules[name].parameters()):
            assert torch.equal(a, b)


def test_madgan_refuses_what_cannot_work():
    with pytest.raises(ConfigError, match="generators"):
        MADGAN(generators=1)
    G, D = tiny_nets(outputs=4)
    with pytest.raises(ConfigError, match="ema"):
        gt.GAN(G, D, z_dim=2, scheme="madgan:generators=3", tricks=["ema"])
    with pytest.raises(ConfigError, match="hinge"):
        gt.GAN(G, D, z_dim=2, scheme="madgan:generators=3", loss="hinge")


# --- MRGAN / MDGAN ---------------------------------------------------------------------------
def test_mrgan_builds_an_encoder_from_data_shape_and_z_shape():
    G, D = tiny_nets(z_dim=3)
    gan = gt.GAN(G, D, z_dim=3, scheme="mrgan", data_shape=(2,))
    assert gan.modules["E"](torch.randn(5, 2)).shape == (5, 3) and "E" in gan.optimizers
    image_G = nn.Sequential(nn.Linear(4, 3 * 8 * 8), nn.Unflatten(1, (3, 8, 8)))     # nets that fit the images:
    image_D = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1))                   # the GAN checks them
    image_gan = gt.GAN(image_G, image_D, z_dim=4, scheme="mdgan", data_shape=(3, 8, 8))
    assert image_gan.modules["E"](torch.randn(2, 3, 8, 8)).shape == (2, 4)
    assert "D_diffusion" in image_gan.optimizers
    with pytest.raises(ConfigError, match="data_shape"):
        gt.GAN(G, D, z_dim=3, scheme="mrgan")


def test_mrgan_regularizers_have_the_papers_intended_signs():
    """λ1·MSE + λ2·(-log D(G(E(x)))): the mode term rewards G(E(x)) that D finds real."""
    torch.manual_seed(0)
    G, D = tiny_nets()
    gan = gt.GAN(G, D, z_dim=2, scheme=MRGAN(geometric=0.5, mode=0.25), data_shape=(2,))
    x = ring(16)
    total, logs = gan.scheme.regularizers(gan, x, lambda r: F.softplus(-gan.D(r)).mean())
    recon = G(gan.modules["E"](x))
    mse = per_sample_mse(recon, x).mean()
    mode = -F.logsigmoid(D(recon)).mean()
    torch.testing.assert_close(total, 0.5 * mse + 0.25 * mode)
    torch.testing.assert_close(logs["recon_mse"], mse.detach())
    # a step on the mode term alone raises D's opinion of G(E(x))
    gan2 = gt.GAN(*tiny_nets(), z_dim=2, scheme=MRGAN(geometric=0.0, mode=1.0), data_shape=(2,), lr_g=1e-2)
    from gantricks.schemes.mrgan import _mode_term
    before = gan2.D(gan2.G(gan2.modules["E"](x))).mean()
    with gan2.frozen("D"):
        gan2.update(("G", "E"), _mode_term(gan2, gan2.G(gan2.modules["E"](x))))
    assert gan2.D(gan2.G(gan2.modules["E"](x))).mean() > before


def test_mrgan_encoder_is_trained_only_by_the_regularizers():
    torch.manual_seed(0)
    G, D = tiny_nets()
    gan = gt.GAN(G, D, z_dim=2, scheme="mrgan:geometric=0,mode=0", data_shape=(2,))
    E0 = [p.clone() for p in gan.modules["E"].parameters()]
    G0 = [p.clone() for p in G.parameters()]
    gan.step(ring(16))
    assert all(torch.equal(a, b) for a, b in zip(E0, gan.modules["E"].parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(G0, G.parameters()))


@pytest.mark.parametrize("scheme", ["mrgan", "mdgan"])
def test_reconstruction_error_falls_during_training(scheme):
    torch.manual_seed(0)
    G, D = tiny_nets(width=32)
    gan = gt.GAN(G, D, z_dim=2, scheme=scheme, data_shape=(2,), lr_g=2e-3, lr_d=1e-3)
    x = ring(256, seed=1)

    def recon_error() -> float:
        with torch.no_grad():
            return float(per_sample_mse(G(gan.modules["E"](x)), x).mean())
    start = recon_error()
    data = iter(lambda: ring(64, seed=torch.randint(10**6, ()).item()), None)
    for _ in range(150):
        logs = gan.step(data)
    assert recon_error() < 0.3 * start, (start, recon_error())
    assert "recon_mse" in logs and all(torch.isfinite(torch.tensor(v)) for v in logs.values())


@pytest.mark.parametrize("scheme", ["mrgan", "mdgan"])
def test_only_g_of_noise_moves_gs_batch_norm_statistics(scheme):
    """G samples in eval mode from G(z): its running statistics must not average in G(E(x)) batches."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    gan = gt.GAN(G, tiny_nets()[1], z_dim=2, scheme=scheme, data_shape=(2,))
    gan.step(ring(16))
    assert int(G[1].num_batches_tracked) == 2      # the D step's G(z) and the G step's G(z)


def test_mdgan_trains_two_discriminators():
    torch.manual_seed(0)
    G, D = tiny_nets()
    gan = gt.GAN(G, D, z_dim=2, scheme="mdgan", data_shape=(2,))
    d_diff = [p.clone() for p in gan.modules["D_diffusion"].parameters()]
    d_man = [p.clone() for p in D.parameters()]
    logs = gan.step(ring(16))
    assert any(not torch.equal(a, b) for a, b in zip(d_diff, gan.modules["D_diffusion"].parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d_man, D.parameters()))
    assert {"manifold_d_loss", "diffusion_d_loss", "recon_mse", "g_loss"} <= set(logs)
    assert gan.optimizers["D_diffusion"].param_groups[0]["lr"] == gan.lr["D"]
    with pytest.raises(ConfigError, match="replay"):
        gt.GAN(*tiny_nets(), z_dim=2, scheme="mdgan", data_shape=(2,), tricks=["replay"])


# --- every scheme of this file through the registry ------------------------------------------
@pytest.mark.parametrize("name", ["ebgan", "madgan", "mrgan", "mdgan"])
def test_registry_smoke(name):
    entry = schemes.get(name)
    assert entry.paper and entry.summary
    gan = build_gan(TrainConfig(scheme=name, generator="mlp:width=32,depth=2",
                                discriminator="mlp:width=32,depth=2,maxout=2"), (2,))
    for _ in range(3):
        logs = gan.step(ring(20))
    assert logs and all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs
    assert gan.sample(10).shape == (10, 2)
