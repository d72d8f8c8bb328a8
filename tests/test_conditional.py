"""Class-conditional GANs: the pieces against independent references, the labels' path through a step,
sampling, checkpoints and the CLI, the metrics, labelled data, and a behaviour test on the ring."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _modes_util import one_thread  # noqa: F401  (autouse fixture)
import torch.nn.functional as F
from torch import nn

import gantricks as gt
from gantricks import functional as GF
from gantricks.build import build_data, build_gan
from gantricks.cli import main
from gantricks.conditional import (ACGANDiscriminator, ConditionalBatchNorm, ConditionalGenerator,
                                   ProjectionDiscriminator, check_labels, label_planes)
from gantricks.errors import ConfigError
from gantricks.metrics.conditional import (class_accuracy, intra_fid, mean_pairwise_distance, own_mode_pct,
                                           within_class_diversity)
from gantricks.metrics.images import frechet_distance
from gantricks.nets.mlp import MLPDiscriminator


# --- pure functions against references -----------------------------------------------------------
def test_projection_discriminator_is_eq3_by_a_loop():
    torch.manual_seed(0)
    base = MLPDiscriminator((2,), width=8, depth=2, maxout=1)
    D = ProjectionDiscriminator(base, 5, 8)
    x, y = torch.randn(6, 2), torch.tensor([0, 4, 2, 2, 1, 3])
    out = D(x, y)
    for i in range(6):
        phi = base.features(x[i:i + 1])[0]
        psi = float((base.head.weight[0] @ phi + base.head.bias[0]).detach())
        inner = sum(float(D.embed.weight[y[i], j].detach()) * float(phi[j].detach()) for j in range(8))
        assert math.isclose(float(out[i].detach()), psi + inner, rel_tol=1e-5, abs_tol=1e-6)
    torch.testing.assert_close(GF.projection_logits(torch.zeros(2), torch.ones(2, 3), torch.full((2, 3), 2.0)),
                               torch.full((2,), 6.0))


def test_acgan_class_loss_is_the_cross_entropy_by_a_loop():
    logits, y = torch.randn(5, 4), torch.tensor([0, 3, 1, 1, 2])
    expected = -sum(math.log(math.exp(logits[i, y[i]]) / sum(math.exp(v) for v in logits[i].tolist()))
                    for i in range(5)) / 5
    assert math.isclose(float(GF.acgan_class_loss(logits, y)), expected, rel_tol=1e-5)
    D = ACGANDiscriminator(MLPDiscriminator((2,), width=8, depth=1, maxout=1), 4, 8)
    assert D(torch.randn(3, 2)).shape == (3, 5)


def test_conditional_batch_norm_is_bn_then_the_class_gain_and_bias():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm(nn.BatchNorm2d(3), 4)
    nn.init.normal_(cbn.gain.weight)
    nn.init.normal_(cbn.bias.weight)
    x, y = torch.randn(6, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0, 1])
    cbn.labels = y
    out = cbn(x)
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    for i in range(6):
        for c in range(3):
            ref = (x[i, c] - mean[c]) / torch.sqrt(var[c] + 1e-5) * cbn.gain.weight[y[i], c] + cbn.bias.weight[y[i], c]
            torch.testing.assert_close(out[i, c], ref, rtol=1e-4, atol=1e-5)
    cbn.labels = None
    with pytest.raises(ConfigError, match="without labels"):
        cbn(x)


def test_label_planes_and_columns():
    code = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    img = label_planes(torch.zeros(2, 1, 3, 3), code)
    assert img.shape == (2, 3, 3, 3) and torch.equal(img[1, 2], torch.ones(3, 3)) and torch.equal(img[0, 2],
                                                                                                torch.zeros(3, 3))
    flat = label_planes(torch.zeros(2, 4), code)
    assert torch.equal(flat[:, 4:], code)


def test_check_labels_cycles_and_refuses_outside_classes():
    assert check_labels([0, 1, 2], 10, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert check_labels(3, 10, 3).tolist() == [3, 3, 3]
    with pytest.raises(ConfigError, match="label 10 is outside the classes 0..9"):
        check_labels([1, 10], 10)
    with pytest.raises(ConfigError, match="outside"):
        check_labels(-1, 10)


# --- metrics against references ---------------------------------------------------------------------
def test_class_accuracy_own_mode_and_diversity_by_loops():
    assert class_accuracy(torch.tensor([1, 2, 3, 3]), torch.tensor([1, 2, 0, 3])) == 0.75
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    samples = torch.tensor([[0.01, 0.0], [10.0, 0.05], [0.0, 0.0], [5.0, 5.0]])
    labels = torch.tensor([0, 1, 1, 0])
    assert own_mode_pct(samples, labels, centers, 0.1) == 50.0      # the 3rd sits in the other mode
    x = torch.randn(7, 3, dtype=torch.float64)
    loop = sum(float((x[i] - x[j]).norm()) for i in range(7) for j in range(7) if i != j) / 42
    assert math.isclose(mean_pairwise_distance(x), loop, rel_tol=1e-9)


def test_intra_fid_and_within_class_diversity_by_loops():
    gen = torch.Generator().manual_seed(0)
    real_f = torch.randn(90, 3, generator=gen, dtype=torch.float64)
    real_y = torch.arange(90) % 3
    fake_f = torch.randn(90, 3, generator=gen, dtype=torch.float64) * 0.5 + 1
    fake_y = torch.arange(90) % 3
    fake_y[:5] = 0                         # class 1 and 2 lose a few; all still >= 20 samples
    mean, per = intra_fid(real_f, real_y, fake_f, fake_y, 3)
    ref = [frechet_distance(real_f[real_y == k], fake_f[fake_y == k]) for k in range(3)]
    assert per == pytest.approx(ref) and mean == pytest.approx(sum(ref) / 3)
    div = within_class_diversity(real_f, real_y, fake_f, fake_y, 3)
    ratios = [mean_pairwise_distance(fake_f[fake_y == k]) / mean_pairwise_distance(real_f[real_y == k])
              for k in range(3)]
    assert div == pytest.approx(sum(ratios) / 3)
    assert div == pytest.approx(0.5, abs=0.15)       # the fakes are half as spread


# --- the labels' path -------------------------------------------------------------------------------------
class LabelEcho(nn.Module):
    """G(z, y): the label itself as the sample's value (plus a learnable 0), so every fake says its label."""

    def __init__(self):
        super().__init__()
        self.zero = nn.Parameter(torch.zeros(1))
        self.z_dim = 2

    def forward(self, z, y):
        return y.float()[:, None].expand(-1, 2) + self.zero + 0 * z


class Recorder(nn.Module):
    """D(x, y) that records whether each sample's label equals the value it carries."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.agree: list[bool] = []

    def forward(self, x, y):
        self.agree.append(bool(torch.equal(x[:, 0].round().long(), y)))
        return self.lin(x).squeeze(1)


def test_real_and_fake_labels_reach_d_with_their_batches_and_sample_takes_labels():
    G, D = LabelEcho(), Recorder()
    gan = gt.GAN(G, D, z_dim=2, conditional="projection", num_classes=5, tricks=["r1"])
    y = torch.tensor([4, 0, 3, 3, 1, 2])
    real = y.float()[:, None].expand(-1, 2).clone()         # a real sample of class k is the point (k, k)
    for _ in range(3):
        gan.step((real, y))
    assert len(D.agree) > 9 and all(D.agree)                 # real, fake, R1's and G's calls
    assert gan.sample(5, labels=[2, 0]).round().tolist() == [[2.0, 2.0], [0.0, 0.0], [2.0, 2.0], [0.0, 0.0],
                                                              [2.0, 2.0]]
    assert gan.sample(3, labels=4)[:, 0].round().tolist() == [4.0, 4.0, 4.0]
    with pytest.raises(ConfigError, match="outside the classes 0..4"):
        gan.sample(2, labels=5)
    with pytest.raises(ConfigError, match=r"\(x, y\) pairs"):
        gan.step(real)
    paths = gan.interpolate(2, 4, "lerp", labels=[1, 3])
    assert paths.shape == (2, 4, 2) and paths[1, :, 0].round().tolist() == [3.0] * 4


def test_unconditional_gan_refuses_labels_and_pairs():
    G = nn.Sequential(nn.Linear(2, 2))
    D = nn.Sequential(nn.Linear(2, 1))
    gan = gt.GAN(G, D, z_dim=2)
    with pytest.raises(ConfigError, match="not conditional"):
        gan.sample(3, labels=[1])
    with pytest.raises(ConfigError, match="not conditional"):
        gan.step((torch.randn(4, 2), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ConfigError, match="set conditional"):
        gt.GAN(G, D, z_dim=2, num_classes=3)


def tiny_config(**changes) -> gt.TrainConfig:
    base = dict(data="ring8", generator="mlp:width=32,depth=2", discriminator="mlp:width=32,depth=2,maxout=1",
                z_dim=4, batch_size=32, steps=4, eval_every=0, eval_samples=200, checkpoint_every=2, log_every=1,
                progress=False, threads=1, conditional="projection", lr_g=1e-3, lr_d=1e-3)
    return gt.TrainConfig(**{**base, **changes})


@pytest.mark.parametrize("mode", ["concat", "projection", "acgan", "projection:g=cbn"])
def test_every_mode_builds_from_a_config_and_steps(mode):
    cfg = tiny_config(conditional=mode)
    sampler = build_data(cfg)
    gan = build_gan(cfg, sampler.shape, sampler.num_classes)
    logs = gan.step(lambda: sampler.labelled(32))
    assert all(math.isfinite(v) for v in logs.values())
    assert ("d_class" in logs and "g_class" in logs) == mode.startswith("acgan")


def test_acgan_step_equals_the_papers_losses():
    torch.manual_seed(0)
    G = ConditionalGenerator(nn.Sequential(nn.Linear(4, 2)), 3, 2, "embed", 2)
    D = ACGANDiscriminator(MLPDiscriminator((2,), width=8, depth=1, maxout=1), 3, 8)
    gan = gt.GAN(G, D, z_dim=2, conditional="acgan:weight=0.5", num_classes=3)
    real, y_real = torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    gan.conditioning.real_labels = y_real
    fake = gan.generate(6).detach()
    y_fake = gan.conditioning.fake_labels
    total, logs = gan.discriminator_loss(gan.D, real, fake)
    out_r, out_f = D(real), D(fake)
    expected = (F.softplus(-out_r[:, 0]).mean() + F.softplus(out_f[:, 0]).mean()
                + 0.5 * (F.cross_entropy(out_r[:, 1:], y_real) + F.cross_entropy(out_f[:, 1:], y_fake)))
    torch.testing.assert_close(total, expected)
    g_total, _ = gan.generator_loss(gan.D, fake)
    torch.testing.assert_close(g_total, F.softplus(-out_f[:, 0]).mean() + 0.5 * F.cross_entropy(out_f[:, 1:], y_fake))


def test_composes_with_d_tricks_and_refuses_what_cannot_carry_labels():
    for tricks in (["spectral-norm", "r1", "ema"], ["minibatch-stddev", "label-smoothing"],
                   ["historical-averaging", "virtual-batch-norm", "wgan-gp"]):
        cfg = tiny_config(tricks=tuple(tricks), conditional="acgan" if "wgan-gp" not in tricks else "projection")
        sampler = build_data(cfg)
        gan = build_gan(cfg, sampler.shape, sampler.num_classes)
        for _ in range(2):
            logs = gan.step(lambda: sampler.labelled(32))
        assert all(math.isfinite(v) for v in logs.values()), tricks
    for cond, tricks, scheme, why in (("projection", ("pacgan",), "standard", "packs several samples"),
                                      ("projection", ("replay",), "standard", "past fakes without the labels"),
                                      ("concat", ("feature-matching",), "standard", "concat D's features"),
                                      ("projection", (), "unrolled", "standard scheme only")):
        cfg = tiny_config(tricks=tricks, conditional=cond, scheme=scheme)
        sampler = build_data(cfg)
        with pytest.raises(ConfigError, match=why):
            build_gan(cfg, sampler.shape, sampler.num_classes)


# --- labelled data -------------------------------------------------------------------------------------------
def test_labelled_data_sources(tmp_path):
    from PIL import Image

    mnist = gt.registry.datasets.build("mnist5k", seed=0)
    x, y = mnist.labelled(8)
    assert mnist.num_classes == 10 and mnist.digit_labels and y.dtype == torch.long
    images, labels = mnist.data, mnist.class_labels
    assert all(torch.equal(x[i], images[(images == x[i]).flatten(1).all(1).nonzero()[0, 0]]) for i in range(2))
    stacked = gt.registry.datasets.build("stacked-mnist", seed=0, train_images=100)
    xs, ys = stacked.labelled(5)
    digits = stacked.labels[stacked._order[:5]]
    assert stacked.num_classes == 1000 and ys.tolist() == (digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]).tolist()
    one = gt.registry.datasets.build("stacked-mnist", seed=0, train_images=100, label=1)
    assert one.num_classes == 10 and one.labelled(5)[1].tolist() == digits[:, 1].tolist()
    for data in ("ring8", "grid25:train_points=0"):
        s = build_data(tiny_config(data=data))
        pts, modes = s.labelled(50)
        assert torch.equal(torch.cdist(pts, s.centers).argmin(1), modes) and s.num_classes == len(s.centers)
    for k, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * k + i, np.uint8)).save(tmp_path / name / f"{i}.png")
    folder = gt.registry.datasets.build("image-folder", path=str(tmp_path), size=8, channels=1)
    xf, yf = folder.labelled(6)
    assert folder.num_classes == 2 and folder.class_names == ["cat", "dog"]
    assert torch.equal(((xf[:, 0, 0, 0] + 1) * 127.5).round() >= 40, yf.bool())


# --- behaviour: labels land in their own mode ------------------------------------------------------------
def test_conditional_samples_land_in_their_own_mode_on_the_ring():
    """Each of ring8's modes is a class: after a short run, samples asked for mode k are at mode k
    (an unconditional G could place only ~1/8 of them there by chance)."""
    cfg = tiny_config(steps=600, conditional="projection", generator="mlp:width=64,depth=2",
                      discriminator="mlp:width=64,depth=2,maxout=1", seed=1)
    sampler = build_data(cfg)
    gan = build_gan(cfg, sampler.shape, sampler.num_classes)
    for _ in range(cfg.steps):
        gan.step(lambda: sampler.labelled(64))
    labels = torch.arange(800) % 8
    x = gan.sample(800, torch.Generator().manual_seed(0), labels=labels)
    nearest = torch.cdist(x, sampler.centers).argmin(1)
    assert float((nearest == labels).float().mean()) > 0.9


# --- the CLI: train, resume, eval, sample, bad input ---------------------------------------------------------------
def cli(*argv) -> int:
    return main([str(a) for a in argv])


TRAIN = ["train", "--data", "ring8", "--generator", "mlp:width=16,depth=1", "--discriminator",
         "mlp:width=16,depth=1,maxout=1", "--z-dim", "2", "--batch-size", "16", "--eval-every", "0",
         "--eval-samples", "200", "--checkpoint-every", "2", "--no-progress", "--conditional", "acgan"]


def test_cli_resume_is_exact_and_sample_eval_take_labels(tmp_path, capsys):
    assert cli(*TRAIN, "--steps", "4", "--out", tmp_path / "full") == 0
    assert cli(*TRAIN, "--steps", "2", "--out", tmp_path / "half") == 0
    assert cli("train", "--resume", "--steps", "4", "--out", tmp_path / "half", "--no-progress") == 0
    a = torch.load(sorted((tmp_path / "full" / "checkpoints").iterdir())[-1], weights_only=True)
    b = torch.load(sorted((tmp_path / "half" / "checkpoints").iterdir())[-1], weights_only=True)
    for k, v in a["gan"]["modules"]["D"].items():
        torch.testing.assert_close(v, b["gan"]["modules"]["D"][k], rtol=0, atol=0)
    capsys.readouterr()
    assert cli("eval", tmp_path / "full", "--samples", "200") == 0
    assert "own_mode_pct" in json.loads(capsys.readouterr().out)
    assert cli("sample", tmp_path / "full", "--labels", "0,1", "-n", "6", "--out", tmp_path / "s.pt") == 0
    assert torch.load(tmp_path / "s.pt").shape == (6, 2)
    assert cli("sample", tmp_path / "full", "--interpolate", "slerp", "--steps", "5", "-n", "3",
               "--label", "2", "--out", tmp_path / "path.png") == 0
    assert (tmp_path / "path.png").stat().st_size > 0


def test_cli_bad_labels_one_line_exit_2(tmp_path, capsys):
    assert cli(*TRAIN, "--steps", "2", "--out", tmp_path / "c") == 0
    uncond = [a for a in TRAIN if a not in ("--conditional", "acgan")]
    assert cli(*uncond, "--steps", "2", "--out", tmp_path / "u") == 0
    capsys.readouterr()
    cases = [(("sample", tmp_path / "c", "--label", "8", "--out", tmp_path / "x.npy"), "label 8 is outside the classes 0..7"),
             (("sample", tmp_path / "u", "--labels", "0,1", "--out", tmp_path / "x.npy"), "not conditional"),
             (("sample", tmp_path / "c", "--labels", "a", "--out", tmp_path / "x.npy"), "integers"),
             (("sample", tmp_path / "c", "--dropout", "--out", tmp_path / "x.npy"), "no dropout layer")]
    flat = tmp_path / "flat"
    flat.mkdir()
    from PIL import Image
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(flat / "a.png")
    cases.append(((*TRAIN, "--data", f"image-folder:path={flat},size=8,channels=1", "--steps", "1",
                   "--out", tmp_path / "r"), "needs labelled data"))
    cases.append(((*TRAIN, "--conditional", "projection:g=nope", "--steps", "1", "--out", tmp_path / "r"),
                  "g must be one of"))
    for argv, message in cases:
        assert cli(*argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "x.npy").exists() and not (tmp_path / "r").exists()


def test_eval_reports_class_accuracy_and_intra_fid_on_mnist(tmp_path, capsys):
    assert cli("train", "--data", "mnist5k", "--generator", "dcgan:width=8", "--discriminator", "dcgan:width=8",
               "--z-dim", "8", "--batch-size", "16", "--steps", "2", "--eval-every", "0", "--eval-samples", "200",
               "--no-progress", "--conditional", "projection:g=cbn", "--out", tmp_path / "m") == 0
    capsys.readouterr()
    assert cli("eval", tmp_path / "m", "--samples", "200") == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 <= out["class_accuracy"] <= 1 and out["intra_fid"] > 0 and len(out["intra_fid_per_class"]) == 10
    assert out["within_class_diversity"] > 0


def test_config_key_from_toml_table_and_flag_and_refused_names(tmp_path):
    from gantricks.config import from_mapping, load_toml

    path = tmp_path / "c.toml"
    path.write_text('data = "mnist5k"\nconditional = {name = "acgan", weight = 0.5}\n')
    assert load_toml(path).conditional == "acgan:weight=0.5"
    assert from_mapping({"conditional": "projection:g=cbn"}).conditional == "projection:g=cbn"
    for bad, message in (("cgan", "unknown conditional 'cgan'"), ("acgan:weight=-1", "weight must be a positive"),
                         ("projection:size=3", "has no option 'size'")):
        with pytest.raises(ConfigError, match=message):
            from_mapping({"conditional": bad})
