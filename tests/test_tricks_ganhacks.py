"""The rest of the ganhacks / Salimans et al. 2016 list: historical averaging, virtual batch norm, dropout in
G at sampling time, SGD for D, and the interpolations of z — each against a reference and for what it claims."""
from __future__ import annotations

import io
import math

import pytest
import torch
from _modes_util import one_thread  # noqa: F401  (autouse fixture)
from torch import nn

import gantricks as gt
from gantricks.cli import main
from gantricks.errors import ConfigError
from gantricks.functional import (historical_average_penalty, interpolation_path, lerp, slerp,
                                  update_running_mean, virtual_batch_stats)
from gantricks.nn import ReferenceBatchGenerator, VirtualBatchNorm, insert_dropout, use_virtual_batch_norm


# --- historical averaging -------------------------------------------------------------------------------------
def test_historical_average_penalty_and_running_mean_by_a_loop():
    torch.manual_seed(0)
    history = [[torch.randn(3, 2), torch.randn(4)] for _ in range(5)]
    averages = [t.clone() for t in history[0]]
    for count, params in enumerate(history[1:], start=1):
        update_running_mean(averages, params, count)
    for i, a in enumerate(averages):
        torch.testing.assert_close(a, sum(h[i] for h in history) / 5)
    now = [torch.randn(3, 2), torch.randn(4)]
    loop = sum(float((now[i] - averages[i]).flatten()[j]) ** 2 for i in range(2) for j in range(now[i].numel()))
    assert math.isclose(float(historical_average_penalty(now, averages)), loop, rel_tol=1e-5)


def test_historical_averaging_trick_keeps_the_mean_of_past_parameters():
    torch.manual_seed(0)
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    gan = gt.GAN(G, D, z_dim=2, tricks=["historical-averaging:weight=0.5"])
    seen = {"G": [[p.detach().clone() for p in G.parameters()]], "D": [[p.detach().clone() for p in D.parameters()]]}
    real = torch.randn(8, 2)
    for _ in range(4):
        logs = gan.step(real)
        seen["G"].append([p.detach().clone() for p in G.parameters()])
        seen["D"].append([p.detach().clone() for p in D.parameters()])
    trick = gan.trick("historical-averaging")
    for role, net in (("G", G), ("D", D)):
        mean = [sum(s[i] for s in seen[role]) / len(seen[role]) for i in range(2)]
        torch.testing.assert_close(list(trick.averages[role].values()), mean)
    assert trick.count == 5 and "g_hist_avg" in logs and "d_hist_avg" in logs
    state = io.BytesIO()
    torch.save(gan.state_dict(), state)
    saved = torch.load(io.BytesIO(state.getvalue()), weights_only=True)["tricks"]["historical-averaging"]
    assert saved["count"] == 5 and set(saved["averages"]) == {"G", "D"}
    assert logs["g_hist_avg"] > 0


class DiracG(nn.Module):
    """The Dirac GAN's G (Mescheder et al. 2018, §2.2): every sample is θ."""

    def __init__(self):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([1.0]))

    def forward(self, z):
        return self.theta.expand(len(z), 1) + 0 * z[:, :1]


def dirac_distance(tricks) -> float:
    """Distance of (θ, ψ) from the equilibrium (0, 0) after 300 SGD steps of the Dirac GAN (data at 0,
    D(x) = ψx, the Wasserstein loss), where plain gradient descent circles the equilibrium for ever."""
    torch.manual_seed(0)
    D = nn.Linear(1, 1, bias=False)
    nn.init.ones_(D.weight)
    gan = gt.GAN(DiracG(), D, z_dim=1, loss="wasserstein", tricks=tricks, optimizer_g="sgd:lr=0.1",
                 optimizer_d="sgd:lr=0.1")
    for _ in range(300):
        gan.step(torch.zeros(8, 1))
    return math.hypot(float(gan.G.theta.detach()), float(D.weight.detach()))


def test_historical_averaging_brings_the_dirac_gan_to_its_equilibrium():
    """Salimans et al.'s claim (§3.3): it finds equilibria where gradient descent cycles."""
    assert dirac_distance([]) > 1.0                                   # starts at sqrt(2), still orbiting
    assert dirac_distance(["historical-averaging:weight=0.1"]) < 0.1


# --- virtual batch norm -------------------------------------------------------------------------------------------
def test_virtual_batch_stats_are_those_of_the_reference_batch_plus_the_example():
    torch.manual_seed(0)
    ref, x = torch.randn(5, 3, 2, 2), torch.randn(4, 3, 2, 2)
    vbn = VirtualBatchNorm(3)
    nn.init.normal_(vbn.weight)
    nn.init.normal_(vbn.bias)
    vbn.reference = True
    ref_out = vbn(ref)
    vbn.reference = False
    out = vbn(x)
    for c in range(3):       # the reference batch: its own statistics
        m, v = ref[:, c].mean(), ref[:, c].var(unbiased=False)
        torch.testing.assert_close(ref_out[:, c], (ref[:, c] - m) / torch.sqrt(v + 1e-5) * vbn.weight[c] + vbn.bias[c])
    for i in range(4):       # each example: the statistics of {reference batch, the example}
        for c in range(3):
            pool = torch.cat([ref[:, c].flatten(), x[i, c].flatten()])
            m, v = pool.mean(), pool.var(unbiased=False)
            ref_i = (x[i, c] - m) / torch.sqrt(v + 1e-5) * vbn.weight[c] + vbn.bias[c]
            torch.testing.assert_close(out[i, c], ref_i, rtol=1e-4, atol=1e-5)
    mean, var = virtual_batch_stats(torch.ones(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), 3)
    torch.testing.assert_close(mean, torch.full((1, 2), 0.25))
    torch.testing.assert_close(var, torch.full((1, 2), 0.25 - 0.0625))


def test_with_vbn_a_sample_no_longer_depends_on_its_batch():
    """BN's output for an example changes with the rest of its batch; VBN's does not (§3.4's point)."""
    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    z = torch.randn(16, 4)
    bn = make().train()
    assert not torch.allclose(bn(z)[:2], bn(z[:2]))
    G = make()
    assert use_virtual_batch_norm(G, probe=lambda: None) == 1
    vbn = ReferenceBatchGenerator(G, torch.randn(32, 4)).train()
    torch.testing.assert_close(vbn(z)[:2], vbn(z[:2]))
    torch.testing.assert_close(vbn.eval()(z[:2]), vbn.train()(z[:2]))    # and the same in sampling


def test_vbn_trick_fixes_its_reference_batch_and_saves_it():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))     # no batch norm: one is put before the ReLU
    gan = gt.GAN(G, nn.Linear(2, 1), z_dim=2, tricks=["virtual-batch-norm:size=16"])
    ref = gan.G.reference_noise.clone()
    gan.step(torch.randn(8, 2))
    assert torch.equal(gan.G.reference_noise, ref) and ref.shape == (16, 2)
    assert "reference_noise" in gan.state_dict()["modules"]["G"]
    assert any(isinstance(m, VirtualBatchNorm) for m in gan.G.modules())
    with pytest.raises(ConfigError, match="neither batch norm nor a hidden activation"):
        gt.GAN(nn.Linear(2, 2), nn.Linear(2, 1), z_dim=2, tricks=["virtual-batch-norm"])


# --- dropout in G at sampling time -------------------------------------------------------------------------------------
def test_insert_dropout_is_the_explicit_masked_forward():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2))
    w1, b1, w2, b2 = (t.detach().clone() for t in G.parameters())
    assert insert_dropout(G, 0.5) == 1
    z = torch.randn(5, 3)
    torch.manual_seed(7)
    out = G.train()(z)
    torch.manual_seed(7)                                   # the same draw of the mask, by hand after the ReLU
    h = torch.relu(z @ w1.T + b1)
    dropped = torch.nn.functional.dropout(h, 0.5, training=True)
    kept = dropped != 0
    assert 0 < int(kept.sum()) < kept.numel()
    torch.testing.assert_close(dropped[kept], h[kept] * 2)                # survivors scaled by 1/(1-p)
    torch.testing.assert_close(out, dropped @ w2.T + b2)
    torch.testing.assert_close(G.eval()(z), h @ w2.T + b2)               # off in eval mode


def test_sampling_with_dropout_is_noise_and_is_seeded():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    gan = gt.GAN(G, nn.Linear(2, 1), z_dim=2, tricks=["g-dropout:p=0.5"])
    z_seed = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a, b = gan.sample(64, z_seed()), gan.sample(64, z_seed())
    torch.testing.assert_close(a, b)                                      # one seed: the same samples
    off = gt.GAN(G, nn.Linear(2, 1), z_dim=2, tricks=["g-dropout:p=0.5,sampling=false"])
    plain = off.sample(64, z_seed())
    assert not torch.allclose(a, plain)                                   # dropout on: other samples
    torch.testing.assert_close(plain, off.sample(64, z_seed(), dropout=False))
    assert not torch.allclose(off.sample(64, z_seed(), dropout=True), plain)
    rng = torch.get_rng_state()
    gan.sample(8, z_seed())
    assert torch.equal(rng, torch.get_rng_state())                        # the training RNG untouched


def test_sgd_for_d_through_the_optimizer_options():
    gan = gt.GAN(nn.Linear(2, 2), nn.Linear(2, 1), z_dim=2, optimizer_d="sgd:lr=0.01,momentum=0.9")
    assert isinstance(gan.optimizers["D"], torch.optim.SGD) and isinstance(gan.optimizers["G"], torch.optim.Adam)
    assert gan.optimizers["D"].param_groups[0]["momentum"] == 0.9


# --- interpolation ---------------------------------------------------------------------------------------------------------
def test_slerp_is_the_great_circle_formula_and_lerp_the_line():
    torch.manual_seed(0)
    a, b = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    for t in (0.0, 0.3, 1.0):
        out = slerp(a, b, t)
        for i in range(4):
            omega = math.acos(float(a[i] @ b[i]) / (float(a[i].norm()) * float(b[i].norm())))
            ref = math.sin((1 - t) * omega) / math.sin(omega) * a[i] + math.sin(t * omega) / math.sin(omega) * b[i]
            torch.testing.assert_close(out[i], ref)
        torch.testing.assert_close(lerp(a, b, t), (1 - t) * a + t * b)
    u, v = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    torch.testing.assert_close(slerp(u, v, 0.5).norm(dim=1), torch.ones(1))     # stays on the circle
    torch.testing.assert_close(slerp(u, u * 2, 0.5), lerp(u, u * 2, 0.5))     # parallel: the line
    path = interpolation_path(a, b, 6, "slerp")
    assert path.shape == (4, 6, 5)
    torch.testing.assert_close(path[:, 0], a)
    torch.testing.assert_close(path[:, -1], b)
    with pytest.raises(ConfigError, match="steps"):
        interpolation_path(a, b, 1)


def test_cli_interpolation_writes_an_image_grid_and_a_path_plot(tmp_path, capsys):
    common = ["--z-dim", "4", "--batch-size", "16", "--steps", "1", "--eval-every", "0", "--eval-samples", "100",
              "--no-progress"]
    assert main(["train", "--data", "ring8", *common, "--out", str(tmp_path / "ring")]) == 0
    assert main(["train", "--data", "mnist5k:limit=64", "--generator", "dcgan:width=8", "--discriminator",
                 "dcgan:width=8", *common, "--out", str(tmp_path / "img")]) == 0
    for run, method in (("ring", "lerp"), ("img", "slerp")):
        out = tmp_path / f"{run}.png"
        assert main(["sample", str(tmp_path / run), "--interpolate", method, "--steps", "8", "--out", str(out)]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["sample", str(tmp_path / "img"), "--interpolate", "slerp", "-n", "2", "--steps", "3",
                 "--out", str(tmp_path / "p.npy")]) == 0
    import numpy as np
    assert np.load(tmp_path / "p.npy").shape == (2, 3, 1, 28, 28)
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "ring"), "--steps", "4", "--out", str(tmp_path / "x.png")]) == 2
    assert "--interpolate" in capsys.readouterr().err


def test_list_shows_the_new_tricks_with_their_papers(capsys):
    assert main(["list", "trick"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "Salimans et al. 2016, arXiv:1606.03498, §3.3" in lines["historical-averaging"]
    assert "Salimans et al. 2016, arXiv:1606.03498, §3.4" in lines["virtual-batch-norm"]
    assert "Isola et al. 2017" in lines["g-dropout"]
