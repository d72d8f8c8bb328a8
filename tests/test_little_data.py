"""Little data (issue 17): the data (mnist5k:n=N, held-out digits), DiffAugment, ADA, bCR, zCR and LeCam against
independent references (explicit loops over pixels, the papers' formulas, a scripted ADA sequence), what each
does in a short training, and the overfitting measure and flag of the monitor."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import gantricks as gt
from gantricks.build import build_gan
from gantricks.cli import main
from gantricks.config import TrainConfig
from gantricks.errors import ConfigError
from gantricks.functional import (ada_augment, ada_p_update, bcr_terms, diff_augment, draw_ada, draw_diffaugment,
                                  lecam_penalty, zcr_d_term, zcr_g_term)
from gantricks.metrics.overfit import discriminator_scores, overfit_metrics, overfit_score
from gantricks.monitor import OVERFIT_SHARE, REMEDIES, Monitor
from gantricks.registry import datasets
from gantricks.tricks.ada import ADA, scale
from gantricks.tricks.base import StepContext
from gantricks.tricks.diffaugment import brightness, contrast, cutout, saturation, translate
from gantricks.tricks.lecam import LeCam

from _tricks_util import single_thread  # noqa: F401  (autouse fixture)

SHAPE = (1, 8, 8)


def images(n: int = 6, shape=SHAPE, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.tanh(2 * torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))).to(dtype)


def tiny_image_gan(tricks=(), loss: str = "nonsaturating", seed: int = 0, **kw) -> gt.GAN:
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 64), nn.Tanh(), nn.Unflatten(1, SHAPE))
    D = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * 16, 1))
    return gt.GAN(G, D, z_dim=4, loss=loss, tricks=list(tricks), data_shape=SHAPE, lr_d=1e-3, lr_g=1e-3, **kw)


# --- data -----------------------------------------------------------------------------------------------------
def test_mnist5k_n_is_the_first_digits_of_each_class_and_the_held_out_ones_are_others():
    from gantricks.data.images import load_mnist5k, to_unit_range

    images_, labels = load_mnist5k()
    data = datasets.build("mnist5k:n=500")
    assert data.data.shape == (500, 1, 28, 28) and data.heldout.shape == (500, 1, 28, 28)
    assert data.labels.bincount().tolist() == [50] * 10
    digits = to_unit_range(images_)[:, None]
    first = np.concatenate([np.flatnonzero(labels == c)[:50] for c in range(10)])     # the first 50 of each class
    last = np.concatenate([np.flatnonzero(labels == c)[-50:] for c in range(10)])      # the last 50: held out
    torch.testing.assert_close(data.data, digits[np.sort(first)])
    torch.testing.assert_close(data.heldout, digits[np.sort(last)])
    train_rows = {tuple(x.flatten().tolist()) for x in data.data}
    assert not any(tuple(x.flatten().tolist()) in train_rows for x in data.heldout)   # never trained on
    assert len(datasets.build("mnist5k:n=4500").data) == 4500                        # the most with 500 held out
    assert datasets.build("mnist5k:n=5000,heldout=0").heldout is None
    assert data.reference(5000).shape == (5000, 1, 28, 28)       # evaluations compare with all 5,000 digits
    assert len(datasets.build("mnist5k")) == 5000                 # the old dataset is unchanged


@pytest.mark.parametrize("spec, words", [
    ("mnist5k:n=5000", "the largest n is 4500"), ("mnist5k:n=55", "multiple of 10"),
    ("mnist5k:n=-10", "multiple of 10"), ("mnist5k:n=500,heldout=5", "heldout must be a multiple of 10"),
    ("mnist5k:n=500,limit=100", "limit or n"), ("stacked-mnist:n=5000", "the largest n is 4500")])
def test_bad_n_is_one_line_and_exit_2(tmp_path, capsys, spec, words):
    assert main(["train", "--data", spec, "--out", str(tmp_path / "run"), "--generator", "dcgan:width=4",
                 "--discriminator", "dcgan:width=4", "--steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "run").exists()


def test_stacked_mnist_from_n_digits_keeps_held_out_images_of_other_digits():
    data = datasets.build("stacked-mnist:n=100,train_images=500")
    assert len(data.digits) == 100 and data.pool_labels.bincount().tolist() == [10] * 10
    assert data.heldout.shape == (1000, 3, 28, 28) and data(8).shape == (8, 3, 28, 28)
    pool = {tuple(d.flatten().tolist()) for d in data.digits}
    assert not any(tuple(d.flatten().tolist()) in pool for d in data.heldout[:50].flatten(0, 1))
    assert data.reference(10).shape == (10, 3, 28, 28)


# --- DiffAugment ---------------------------------------------------------------------------------------------------
def test_colour_ops_match_the_authors_formulas():
    x, r = images(4, (3, 5, 5)), torch.rand(4)
    for i in range(4):
        torch.testing.assert_close(brightness(x, r)[i], x[i] + (r[i] - 0.5))
        mean_c = x[i].mean(0, keepdim=True)
        torch.testing.assert_close(saturation(x, r)[i], (x[i] - mean_c) * (2 * r[i]) + mean_c)
        torch.testing.assert_close(contrast(x, r)[i], (x[i] - x[i].mean()) * (r[i] + 0.5) + x[i].mean())


def test_translation_and_cutout_match_explicit_loops_over_pixels():
    x = images(5, (2, 9, 7))
    shift_h, shift_w = torch.tensor([-2, 0, 1, 3, -1]), torch.tensor([1, -1, 0, 2, -3])
    out = translate(x, shift_h, shift_w)
    ref = torch.zeros_like(x)
    for b in range(5):
        for i in range(9):
            for j in range(7):
                si, sj = i + int(shift_h[b]), j + int(shift_w[b])
                if 0 <= si < 9 and 0 <= sj < 7:
                    ref[b, :, i, j] = x[b, :, si, sj]
    torch.testing.assert_close(out, ref)

    reflected = translate(x, shift_h, shift_w, padding="reflect")
    ref = torch.zeros_like(x)
    mirror = lambda k, n: -k if k < 0 else (2 * (n - 1) - k if k >= n else k)   # noqa: E731  (reflect, no edge repeat)
    for b in range(5):
        for i in range(9):
            for j in range(7):
                ref[b, :, i, j] = x[b, :, mirror(i + int(shift_h[b]), 9), mirror(j + int(shift_w[b]), 7)]
    torch.testing.assert_close(reflected, ref)

    centre_h, centre_w = torch.tensor([0, 4, 9, 2, 6]), torch.tensor([7, 3, 0, 5, 1])
    cut = cutout(x, centre_h, centre_w)
    ref = x.clone()
    size_h, size_w = 9 // 2, 7 // 2
    for b in range(5):      # the authors' clamped index grid
        for a in range(size_h):
            for c in range(size_w):
                i = min(max(int(centre_h[b]) + a - size_h // 2, 0), 8)
                j = min(max(int(centre_w[b]) + c - size_w // 2, 0), 6)
                ref[b, :, i, j] = 0
    torch.testing.assert_close(cut, ref)


def test_draws_span_the_authors_ranges():
    d = draw_diffaugment(("color", "translation", "cutout"), (4000, 1, 28, 28), torch.Generator().manual_seed(0))
    assert d["shift_h"].min() == -3 and d["shift_h"].max() == 3 and d["shift_w"].abs().max() == 3   # 28 // 8
    assert d["cut_h"].min() == 0 and d["cut_h"].max() == 28        # 28 + (1 - 14 % 2) values: 0..28
    assert 0 <= d["brightness"].min() and d["brightness"].max() < 1


def test_diffaugment_is_differentiable_and_the_same_on_real_and_fake_for_the_same_draws():
    x = images(2, (2, 8, 8), dtype=torch.float64).requires_grad_(True)
    draws = draw_diffaugment(("color", "translation", "cutout"), x.shape, torch.Generator().manual_seed(1))
    assert torch.autograd.gradcheck(lambda t: diff_augment(t, ("color", "translation", "cutout"), draws), (x,))
    real, fake = images(6), images(6)                    # equal batches: the one transform makes equal outputs
    torch.testing.assert_close(diff_augment(real, draws=draw_diffaugment(("color", "translation", "cutout"),
                                                                         real.shape, torch.Generator().manual_seed(2))),
                               diff_augment(fake, draws=draw_diffaugment(("color", "translation", "cutout"),
                                                                         fake.shape, torch.Generator().manual_seed(2))))


def test_diffaugment_reaches_every_d_input_and_g_learns_through_it():
    gan = tiny_image_gan(["diffaugment"])
    real = images(6)
    seen = []
    forward = gan.D.forward
    gan.D.forward = lambda x: (seen.append(x.detach().clone()), forward(x))[1]
    gan.step(real)
    assert len(seen) == 3                               # D's real and fake pass, and G's
    assert not any(torch.equal(s, real) for s in seen)  # never the un-augmented images
    trick = gan.trick("diffaugment")
    fake = images(6).requires_grad_(True)
    _, fake_in = trick.d_inputs(None, fake, gan, "G")
    fake_in.sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="policy must be some of"):
        build_gan(TrainConfig(tricks=("diffaugment:policy=color,flip",), generator="dcgan:width=4",
                              discriminator="dcgan:width=4", z_dim=4), SHAPE)
    with pytest.raises(ConfigError, match="transforms images"):
        build_gan(TrainConfig(tricks=("diffaugment",)), (2,))


def memorisation_gap(tricks, steps: int = 60) -> float:
    """A D asked to tell 8 digits (real) from 8 others (fake): it can only memorise. D's loss at the end."""
    data = datasets.build("mnist5k:n=100,heldout=0").data
    real, other = data[::10][:8], data[1::10][:8]
    torch.manual_seed(0)
    D = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 16, 4, 2, 1), nn.LeakyReLU(0.2),
                      nn.Flatten(), nn.Linear(16 * 7 * 7, 1))
    gan = gt.GAN(nn.Sequential(nn.Linear(4, 784), nn.Unflatten(1, (1, 28, 28))), D, z_dim=4, tricks=tricks,
                 lr_d=2e-3, data_shape=(1, 28, 28))
    losses = []
    for _ in range(steps):
        loss, _ = gan.discriminator_loss(gan.D, real, other)
        gan.update("D", loss)
        losses.append(float(loss.detach()))
    return sum(losses[-10:]) / 10


def test_augmentation_makes_memorising_a_few_images_harder():
    """The claim of DiffAugment and ADA: with D's inputs augmented, D cannot simply memorise a small set."""
    plain = memorisation_gap([])
    assert memorisation_gap(["diffaugment"]) > 2 * plain
    assert memorisation_gap([ADA(p=1.0, kimg=1e9)]) > 2 * plain      # p held at 1: every op on every sample


# --- ADA -----------------------------------------------------------------------------------------------------------
def test_ada_p_follows_the_papers_rule_on_a_scripted_sequence_of_d_outputs():
    batch, interval, kimg, target = 8, 4, 0.256, 0.6          # a step of 8·4/256 = 0.125 per adjustment
    trick = ADA(target=target, interval=interval, kimg=kimg)
    gan = tiny_image_gan([trick])
    gen = torch.Generator().manual_seed(0)
    # mostly-positive outputs (an overfitting D), then mostly-negative ones: p must climb, hit 1, then fall
    fractions = [1.0] * 40 + [0.3] * 40
    p_ref, signs, count, expected, got = 0.0, 0.0, 0, [], []
    for k, frac in enumerate(fractions):
        logits = torch.where(torch.rand(batch, generator=gen) < frac, 1.0, -1.0) * (0.1 + torch.rand(batch, generator=gen))
        ctx = StepContext(gan, gan.D, images(batch), images(batch), real_logits=logits, fake_logits=-logits)
        trick.d_terms(ctx)
        signs += float(torch.sign(logits).sum())
        count += batch
        if (k + 1) % interval == 0:                           # the rule, written out
            r_t = signs / count
            p_ref = min(1.0, max(0.0, p_ref + math.copysign(1, r_t - target) * batch * interval / (kimg * 1000)))
            signs, count = 0.0, 0
        expected.append(p_ref)
        got.append(float(trick.p))
    assert got == pytest.approx(expected, abs=1e-6)
    assert max(got) == 1.0 and got[-1] < 1.0 and got[0] == 0.0
    assert ada_p_update(0.5, 0.6, 0.6, 8, 4, 0.256) == 0.5     # sign(0) = 0: p stays


def test_ada_ops_are_the_identity_at_p_0_differentiable_and_reach_every_op_at_p_1():
    x = images(4, (1, 8, 8))
    torch.testing.assert_close(ada_augment(x, draw_ada(x.shape, 0.0)), x, rtol=0, atol=0)
    d = draw_ada((4000, 1, 8, 8), 1.0, torch.Generator().manual_seed(0))
    assert (d["shift_h"] != 0).float().mean() > 0.6 and (d["scale"] != 1).all() and (d["contrast"] != 1).all()
    half = draw_ada((4000, 1, 8, 8), 0.5, torch.Generator().manual_seed(0))
    assert 0.45 < (half["brightness"] != 0).float().mean() < 0.55
    xd = images(2, (1, 8, 8), dtype=torch.float64).requires_grad_(True)
    draws = {k: v.double() if v.is_floating_point() else v for k, v in d.items()}
    draws = {k: v[:2] for k, v in draws.items()}
    assert torch.autograd.gradcheck(lambda t: ada_augment(t, draws), (xd,))
    torch.testing.assert_close(scale(x, torch.ones(4)), x)         # a zoom of 1 changes nothing


def test_ada_refuses_outputs_without_a_sign_and_composes_with_losses_with_one():
    for loss in ("nonsaturating", "hinge", "least-squares", "minimax"):
        tiny_image_gan(["ada"], loss=loss).step(images(6))
    with pytest.raises(ConfigError, match="Wasserstein critic"):
        tiny_image_gan(["ada"], loss="wasserstein")


def test_ada_p_rises_in_training_on_a_few_images_and_resumes_exactly():
    real = datasets.build("mnist5k:n=10,heldout=0").data[:, :, 10:18, 10:18]       # 10 digits, cropped to 8x8
    gan = tiny_image_gan(["ada:kimg=0.5,interval=2"])
    for _ in range(30):
        logs = gan.step(real)
    assert logs["ada_p"] > 0                 # D separates the few reals well: r_t > 0.6, so p went up
    buffer = io.BytesIO()
    torch.save(gan.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed = tiny_image_gan(["ada:kimg=0.5,interval=2"], seed=1)
    resumed.load_state_dict(state)
    assert float(resumed.trick("ada").p) == float(gan.trick("ada").p)
    a = [resumed.step(real)["ada_p"] for _ in range(5)]
    torch.set_rng_state(state["rng"]["torch"])
    b = [gan.step(real)["ada_p"] for _ in range(5)]
    assert a == b


# --- bCR and zCR ---------------------------------------------------------------------------------------------------
def linear_d(shape=SHAPE, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), 1))


def test_bcr_and_zcr_terms_match_the_formulas():
    D = linear_d().double()
    real, fake = images(5, dtype=torch.float64), images(5, seed=1, dtype=torch.float64)
    T = lambda x: torch.roll(x, 1, dims=3)                 # noqa: E731  (any fixed transform)
    with torch.no_grad():
        got_real, got_fake = bcr_terms(D, real, fake, D(real).squeeze(1), D(fake).squeeze(1), T)
    ref_real = sum((D(real[i:i + 1]) - D(T(real[i:i + 1]))).item() ** 2 for i in range(5)) / 5
    ref_fake = sum((D(fake[i:i + 1]) - D(T(fake[i:i + 1]))).item() ** 2 for i in range(5)) / 5
    assert float(got_real) == pytest.approx(ref_real, rel=1e-5) and float(got_fake) == pytest.approx(ref_fake, rel=1e-5)
    moved = fake + 0.01 * images(5, seed=2, dtype=torch.float64)
    ref_d = sum((D(fake[i:i + 1]) - D(moved[i:i + 1])).item() ** 2 for i in range(5)) / 5
    ref_g = sum(float(((fake[i] - moved[i]) ** 2).sum()) for i in range(5)) / 5
    assert float(zcr_d_term(D, fake, moved).detach()) == pytest.approx(ref_d, rel=1e-5)
    assert float(zcr_g_term(fake, moved)) == pytest.approx(ref_g, rel=1e-5)


def test_the_cr_trick_adds_its_weighted_terms_with_a_translation():
    gan = tiny_image_gan(["cr:real=2,fake=3"])
    real, fake = images(6), images(6, seed=1)
    torch.manual_seed(7)
    _, logs = gan.discriminator_loss(gan.D, real, fake)
    D = gan.D
    torch.manual_seed(7)
    d_real = draw_diffaugment(("translation",), real.shape)
    d_fake = draw_diffaugment(("translation",), fake.shape)
    with torch.no_grad():
        ref_real = (D(real) - D(translate(real, d_real["shift_h"], d_real["shift_w"]))).pow(2).mean()
        ref_fake = (D(fake) - D(translate(fake, d_fake["shift_h"], d_fake["shift_w"]))).pow(2).mean()
    assert float(logs["cr_real"]) == pytest.approx(2 * float(ref_real), rel=1e-5)
    assert float(logs["cr_fake"]) == pytest.approx(3 * float(ref_fake), rel=1e-5)


def consistency_after_training(tricks) -> float:
    """Mean |D(x) - D(T x)| on the training images after D-only training on a memorisation task."""
    gan = tiny_image_gan(tricks)
    real, other = images(8), images(8, seed=5)
    for _ in range(80):
        loss, _ = gan.discriminator_loss(gan.D, real, other)
        gan.update("D", loss)
    g = torch.Generator().manual_seed(3)
    d = draw_diffaugment(("translation",), (64, *SHAPE), g)
    x = real.repeat(8, 1, 1, 1)
    with torch.no_grad():
        return float((gan.D(x) - gan.D(translate(x, d["shift_h"], d["shift_w"]))).abs().mean())


def test_cr_makes_d_consistent_under_the_transform():
    assert consistency_after_training(["cr"]) < 0.5 * consistency_after_training([])


def test_zcr_g_term_makes_g_respond_to_small_latent_moves():
    def sensitivity(tricks):
        gan = tiny_image_gan(tricks)
        real = images(8)
        for _ in range(80):
            gan.step(real)
        z = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
        dz = 0.03 * torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            return float(zcr_g_term(gan.G(z), gan.G(z + dz)))
    assert sensitivity(["zcr:gen=100,dis=0"]) > 2 * sensitivity([])


def test_zcr_and_cr_compose_with_packing_and_augmentation():
    for tricks in (["zcr", "pacgan:m=2"], ["zcr", "diffaugment"], ["cr", "pacgan:m=2"], ["cr", "lecam", "ada"]):
        gan = tiny_image_gan(tricks) if "pacgan:m=2" not in tricks else None
        if gan is None:     # D takes pairs of samples packed along the channels
            torch.manual_seed(0)
            G = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Unflatten(1, SHAPE))
            D = nn.Sequential(nn.Flatten(), nn.Linear(128, 1))
            gan = gt.GAN(G, D, z_dim=4, tricks=tricks, data_shape=SHAPE)
        logs = gan.step(images(6))
        assert all(math.isfinite(v) for v in logs.values()), (tricks, logs)


@pytest.mark.parametrize("scheme", ["unrolled:k=1", "lookahead:k=1"])
def test_the_little_data_tricks_compose_with_unrolling(scheme):
    for name in ("diffaugment", "ada:p=0.5", "cr", "zcr", "lecam"):
        try:
            gan = tiny_image_gan([name], scheme=scheme)
            logs = gan.step(images(6))
        except ConfigError as err:     # only a missing second derivative may refuse it, with that reason
            assert "second derivative" in str(err) and scheme.startswith("unrolled"), err
            continue
        assert "unroll_d_loss" in logs and all(math.isfinite(v) for v in logs.values()), (name, logs)


# --- LeCam ---------------------------------------------------------------------------------------------------------
def test_lecam_penalty_and_its_debiased_anchors_match_the_formula():
    trick = LeCam(weight=0.5, decay=0.9)
    gan = tiny_image_gan([trick])
    gen = torch.Generator().manual_seed(0)
    m_real = m_fake = 0.0
    for t in range(1, 6):
        real_logits, fake_logits = torch.randn(7, generator=gen) + 1, torch.randn(7, generator=gen) - 1
        ctx = StepContext(gan, gan.D, images(7), images(7), real_logits=real_logits, fake_logits=fake_logits)
        term = trick.d_terms(ctx)["lecam"]
        m_real = 0.9 * m_real + 0.1 * float(real_logits.mean())     # an EMA from 0, then zero-debiased
        m_fake = 0.9 * m_fake + 0.1 * float(fake_logits.mean())
        a_real, a_fake = m_real / (1 - 0.9 ** t), m_fake / (1 - 0.9 ** t)
        ref = sum((float(v) - a_fake) ** 2 for v in real_logits) / 7 + sum((a_real - float(v)) ** 2
                                                                            for v in fake_logits) / 7
        assert float(term) == pytest.approx(0.5 * ref, rel=1e-5)
    hinge = lecam_penalty(torch.tensor([0.0, 2.0]), torch.tensor([-3.0, 1.0]), torch.tensor(0.5), torch.tensor(1.0),
                          hinge=True)
    assert float(hinge) == pytest.approx((0 + 1 ** 2) / 2 + (3.5 ** 2 + 0) / 2)


def test_lecam_keeps_d_outputs_on_real_and_fake_closer():
    def gap(tricks):
        gan = tiny_image_gan(tricks)
        real, other = images(8), images(8, seed=5)
        for _ in range(80):
            loss, logs = gan.discriminator_loss(gan.D, real, other)
            gan.update("D", loss)
        return float(logs["d_real"] - logs["d_fake"])
    assert gap(["lecam:weight=1"]) < 0.7 * gap([])


# --- the overfitting measure and the monitor's flag ----------------------------------------------------------------
def test_overfit_measure_matches_the_means_and_leaves_batch_norm_alone():
    D = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 36, 1))
    before = {k: v.clone() for k, v in D.state_dict().items()}
    seen, held, fake = images(10), images(10, seed=1), images(10, seed=2)
    out = overfit_metrics(D, seen, held, fake, batch_size=5)
    assert all(torch.equal(v, before[k]) for k, v in D.state_dict().items())    # running statistics put back
    with torch.no_grad():
        means = [float(torch.cat([D(x[:5]), D(x[5:])]).mean()) for x in (seen, held, fake)]
    assert (out["d_seen"], out["d_heldout"], out["d_fake_eval"]) == pytest.approx(means, rel=1e-5)
    ref = (means[0] - means[1]) / (means[0] - means[2]) if means[0] > means[2] else None
    assert out["d_overfit"] == (pytest.approx(ref) if ref is not None else None)
    assert discriminator_scores(D, seen, 3).shape == (10,)
    assert overfit_score(2.0, 1.0, 0.0) == 0.5 and overfit_score(0.0, 1.0, 2.0) is None


def test_monitor_flags_an_overfitting_d_once_and_suggests_augmentation():
    m = Monitor()
    e = lambda share: {"d_overfit": share, "d_seen": 2.0, "d_fake_eval": -2.0}   # noqa: E731
    assert m.judge_eval(100, e(0.05)) == [] and m.judge_eval(200, e(OVERFIT_SHARE - 0.01)) == []
    flags = m.judge_eval(300, e(OVERFIT_SHARE + 0.1))
    assert [f.name for f in flags] == ["discriminator-overfits"] and flags[0].step == 300
    assert {"diffaugment", "ada"} <= set(REMEDIES["discriminator-overfits"]) and "diffaugment" in flags[0].message()
    assert m.judge_eval(400, e(0.9)) == []              # raised once, until it clears
    assert m.judge_eval(500, {"d_overfit": None}) == []  # D does not separate: nothing to judge


def test_a_short_run_on_little_data_records_the_measure_and_diagnose_plots_the_three_curves(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "mnist5k:n=100", "--generator", "dcgan:width=4", "--discriminator",
                 "dcgan:width=4", "--z-dim", "8", "--batch-size", "16", "--steps", "4", "--eval-every", "2",
                 "--eval-samples", "40", "--trick", "ada:kimg=1,interval=1", "--no-progress", "--out", str(out),
                 "--log-every", "1"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("kind") == "eval"]
    assert len(evals) == 2 and all({"d_seen", "d_heldout", "d_fake_eval", "d_overfit"} <= set(e) for e in evals)
    assert all("ada_p" in r for r in records if r.get("kind") == "train")
    capsys.readouterr()
    assert main(["diagnose", str(out)]) == 0
    text = capsys.readouterr().out
    assert "held-out" in text and (out / "plots" / "diagnosis-overfit.png").exists()


def test_a_list_option_round_trips_through_the_config_file(tmp_path):
    from gantricks.config import load_toml, to_toml

    config = TrainConfig(data="mnist5k:n=500", tricks=("diffaugment:policy=color,translation,cutout", "ada:target=0.6"))
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    again = load_toml(path)
    assert again.tricks == config.tricks and again.data == config.data
    gan = build_gan(again.replace(generator="dcgan:width=4", discriminator="dcgan:width=4", z_dim=4), (1, 28, 28))
    assert gan.trick("diffaugment").policy == ("color", "translation", "cutout")
