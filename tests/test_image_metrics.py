"""Image metrics against independent references: FID (scipy sqrtm), KID (the unbiased MMD² written out),
PRDC (a brute-force loop); the digit feature path; sample grids; the Inception path's errors."""
import math

import numpy as np
import pytest
import torch
from scipy import linalg

from gantricks import plots
from gantricks.errors import ConfigError
from gantricks.metrics import frechet_distance, image_metrics, kernel_distance, prdc
from gantricks.metrics.classifier import DigitClassifier
from gantricks.metrics.images import DigitFeatures, InceptionFeatures, extract_features
from gantricks.registry import metrics

pytest.importorskip("torchmetrics")


def scipy_fid(real: np.ndarray, fake: np.ndarray) -> float:
    mu_r, mu_f = real.mean(0), fake.mean(0)
    s_r, s_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = linalg.sqrtm(s_r @ s_f).real
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(s_r + s_f - 2 * covmean))


def test_fid_matches_scipy_sqrtm_on_features():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 6, generator=g, dtype=torch.float64)
    mix = torch.randn(6, 6, generator=g, dtype=torch.float64) * 0.5 + torch.eye(6)
    fake = torch.randn(300, 6, generator=g, dtype=torch.float64) @ mix + 0.7
    ours = frechet_distance(real, fake)
    assert math.isclose(ours, scipy_fid(real.numpy(), fake.numpy()), rel_tol=1e-4)
    assert abs(frechet_distance(real, real)) < 1e-6


def test_fid_through_digit_features_matches_scipy():
    """The whole image path (per-channel classifier features, torchmetrics) against sqrtm on the same features."""
    torch.manual_seed(0)
    clf = DigitClassifier().eval()               # untrained weights: the path, not the numbers, is under test
    with torch.no_grad():
        clf.body[-2].bias += 3.0                 # every hidden unit alive: full-rank feature covariances
    g = torch.Generator().manual_seed(1)
    real = torch.rand(400, 2, 28, 28, generator=g) * 2 - 1
    fake = (torch.rand(350, 2, 28, 28, generator=g) * 2 - 1) * 0.5
    out = image_metrics(fake, real, classifier=clf, kid_subsets=3, prdc_k=3)
    feat = DigitFeatures(clf, 2)
    assert feat.num_features == 256
    f_real, f_fake = extract_features(feat, real).double(), extract_features(feat, fake).double()
    assert math.isclose(out["fid"], scipy_fid(f_real.numpy(), f_fake.numpy()), rel_tol=1e-4)
    # channel c's features are the classifier's features of that channel alone
    torch.testing.assert_close(f_fake[:, 128:], clf.features(fake[:, 1:2]).double())


def test_kid_matches_unbiased_mmd_written_out():
    g = torch.Generator().manual_seed(2)
    real = torch.randn(40, 5, generator=g, dtype=torch.float64)
    fake = torch.randn(40, 5, generator=g, dtype=torch.float64) + 0.3
    mean, std = kernel_distance(real, fake, subsets=2, subset_size=40)   # every subset is the whole set
    k = lambda a, b: (a @ b.T / 5 + 1) ** 3  # noqa: E731
    m = 40
    kxx, kyy, kxy = k(real, real), k(fake, fake), k(real, fake)
    ref = ((kxx.sum() - kxx.trace()) / (m * (m - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1))
           - 2 * kxy.sum() / m ** 2)
    assert math.isclose(mean, float(ref), rel_tol=1e-6) and std < 1e-9
    assert kernel_distance(real, fake, subsets=5, subset_size=20) == kernel_distance(real, fake, subsets=5,
                                                                                     subset_size=20)


def brute_prdc(real, fake, k):
    real, fake = real.tolist(), fake.tolist()

    def kth(points, p, k):
        return sorted(math.dist(p, q) for q in points)[k]   # index 0 is p itself

    r_real = [kth(real, x, k) for x in real]
    r_fake = [kth(fake, y, k) for y in fake]
    precision = sum(any(math.dist(y, x) < r for x, r in zip(real, r_real)) for y in fake) / len(fake)
    recall = sum(any(math.dist(x, y) < r for y, r in zip(fake, r_fake)) for x in real) / len(real)
    density = sum(sum(math.dist(y, x) < r for x, r in zip(real, r_real)) for y in fake) / (k * len(fake))
    coverage = sum(min(math.dist(x, y) for y in fake) < r for x, r in zip(real, r_real)) / len(real)
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("k,chunk", [(1, 1024), (3, 7), (5, 4)])
def test_prdc_matches_brute_force(k, chunk):
    g = torch.Generator().manual_seed(k)
    real = torch.randn(30, 3, generator=g)
    fake = torch.randn(25, 3, generator=g) * 0.6 + 0.5
    ours = prdc(real, fake, k=k, chunk=chunk)
    ref = brute_prdc(real.double(), fake.double(), k)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key


def test_prdc_tells_fidelity_from_diversity():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(600, 4, generator=g)
    same = prdc(real, torch.randn(600, 4, generator=g))
    collapsed = prdc(real, torch.randn(600, 4, generator=g) * 0.05)      # sharp, but one mode
    far = prdc(real, torch.randn(600, 4, generator=g) + 4.0)             # diverse, but off the data
    assert same["precision"] > 0.8 and same["recall"] > 0.8 and same["coverage"] > 0.8
    assert collapsed["precision"] > 0.9 and collapsed["recall"] < 0.1 and collapsed["coverage"] < 0.1
    assert far["precision"] < 0.1 and far["density"] < 0.1


def test_prdc_refuses_bad_inputs():
    with pytest.raises(ConfigError, match="more than k"):
        prdc(torch.randn(5, 2), torch.randn(5, 2), k=5)
    with pytest.raises(ConfigError, match="same d"):
        prdc(torch.randn(10, 2), torch.randn(10, 3))


def test_metrics_are_registered():
    for name in ("fid", "kid", "prdc", "stacked-mnist-modes"):
        assert name in metrics


def test_no_feature_space_for_other_image_sizes():
    assert image_metrics(torch.zeros(10, 3, 16, 16), torch.zeros(10, 3, 16, 16)) == {}


def test_inception_needs_given_weights(tmp_path):
    with pytest.raises(ConfigError, match="Inception weights not found"):
        InceptionFeatures(tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="Inception weights not found"):
        image_metrics(torch.zeros(4, 3, 32, 32), torch.zeros(4, 3, 32, 32), inception_weights=tmp_path / "nope")


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_image_grid_places_each_image(tmp_path, channels):
    g = torch.Generator().manual_seed(channels)
    x = torch.rand(5, channels, 6, 4, generator=g) * 2 - 1
    grid = plots.grid_array(x, nrow=2, pad=1)
    tile_w = 4 * (channels if channels != 3 else 1)
    assert grid.shape == (3 * 7 + 1, 2 * (tile_w + 1) + 1, 3)
    # image 3 sits at row 1, column 1
    tile = grid[1 + 7:1 + 7 + 6, 1 + (tile_w + 1):1 + (tile_w + 1) + tile_w]
    expect = ((x[3] + 1) / 2).numpy()
    if channels == 3:
        np.testing.assert_allclose(tile, expect.transpose(1, 2, 0), atol=1e-6)
    else:
        for c in range(channels):
            np.testing.assert_allclose(tile[:, c * 4:(c + 1) * 4, 0], expect[c], atol=1e-6)
    assert (grid[0] == 1).all()                               # the padding is white
    path = plots.image_grid(x, tmp_path / "g.png", nrow=2)
    assert path.exists() and path.stat().st_size > 100
