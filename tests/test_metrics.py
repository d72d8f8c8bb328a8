"""mixture_coverage against hand computations on constructed samples."""
import math

import pytest
import torch

from gantricks.data import grid_centers, ring_centers
from gantricks.metrics import mixture_coverage


def test_ring_has_eight_distinct_modes_at_2pi_k_over_8():
    c = ring_centers()
    assert c.shape == (8, 2)
    assert torch.cdist(c, c).add(torch.eye(8) * 10).min() > 0.7  # the linspace pitfall gives a 0 here
    angles = torch.atan2(c[:, 1], c[:, 0]) % (2 * math.pi)
    torch.testing.assert_close(angles.sort().values, torch.arange(8) * 2 * math.pi / 8, atol=1e-6, rtol=0)


def test_grid_centres():
    c = grid_centers()
    assert c.shape == (25, 2)
    assert set(c[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def test_points_on_five_of_eight_centres():
    c = ring_centers()
    samples = c[[0, 1, 2, 3, 4]].repeat(20, 1)           # 100 samples, 20 on each of 5 modes
    m = mixture_coverage(samples, c, 0.01)
    assert m["modes_covered"] == 5
    assert m["high_quality_pct"] == 100.0
    assert m["reverse_kl"] == pytest.approx(math.log(8 / 5))   # Σ (1/5) log(8 · 1/5)


def test_uneven_counts_and_low_quality():
    c = grid_centers()
    std = 0.05
    on = c[[0] * 6 + [1] * 3 + [2] * 1]                    # 10 high-quality samples: 6/3/1 on three modes
    off = torch.tensor([[1.0, 1.0], [3.0, -3.0]])          # midway between centres: low quality
    near = c[[3]] + torch.tensor([[0.0, 2.9 * std]])       # inside 3 std: high quality
    far = c[[4]] + torch.tensor([[3.1 * std, 0.0]])        # just outside 3 std
    m = mixture_coverage(torch.cat([on, off, near, far]), c, std)
    counts = torch.tensor([6, 3, 1, 1], dtype=torch.float64)
    p = counts / counts.sum()
    assert m["modes_covered"] == 4
    assert m["high_quality_pct"] == pytest.approx(100 * 11 / 14)
    assert m["reverse_kl"] == pytest.approx(float((p * torch.log(25 * p)).sum()))
    assert m["mode_counts"][:5] == [6, 3, 1, 1, 0]


def test_nearest_counts_take_every_finite_sample_sharp_or_not():
    c = ring_centers()                                     # radius 1, std 0.01
    sharp = c[[0, 0, 1]]
    blurred = 0.8 * c[[2, 2, 3]]                           # 0.2 from modes 2, 2, 3: not sharp, but nearest to them
    far = 5.0 * c[[4]]                                     # far out, still nearest to mode 4
    nan = torch.tensor([[float("nan"), 0.0]])
    m = mixture_coverage(torch.cat([sharp, blurred, far, nan]), c, 0.01)
    assert m["mode_counts"] == [2, 1, 0, 0, 0, 0, 0, 0]
    assert m["nearest_counts"] == [2, 1, 2, 1, 1, 0, 0, 0]


def test_perfect_sampler_scores_mass_within_three_std():
    """A 2D Gaussian has 1 - exp(-9/2) ≈ 98.89 % of its mass within 3 std of its centre."""
    from gantricks.data import Mixture

    c = ring_centers()
    mix = Mixture(c, 0.01, torch.Generator().manual_seed(0))
    m = mixture_coverage(mix.sample(200_000), c, 0.01)
    assert m["high_quality_pct"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=0.1)
    assert m["modes_covered"] == 8
    assert 0 <= m["reverse_kl"] < 1e-3


def test_no_high_quality_sample_gives_inf_and_nan_samples_count_as_low_quality():
    c = ring_centers()
    m = mixture_coverage(torch.tensor([[5.0, 5.0], [float("nan"), 0.0]]), c, 0.01)
    assert m["modes_covered"] == 0 and m["high_quality_pct"] == 0.0 and math.isinf(m["reverse_kl"])


def test_shape_errors_are_config_errors():
    from gantricks.errors import ConfigError

    with pytest.raises(ConfigError):
        mixture_coverage(torch.zeros(3, 3), ring_centers(), 0.01)
    with pytest.raises(ConfigError):
        mixture_coverage(torch.zeros(3, 2), ring_centers(), 0.0)


# --- PRDC with ties (duplicated points) ------------------------------------------------------------
def prdc_by_definition(real: list, fake: list, k: int) -> dict:
    """PRDC as the ``prdc`` package defines it (Naeem et al. 2020, arXiv:2002.09797, Eq. 1-4), one pair at
    a time: a point's radius is the distance to its k-th nearest neighbour in its own set, itself excluded
    (the (k+1)-th smallest of its distances, its own 0 counted); every comparison is strict."""
    def radii(points):
        return [sorted(math.dist(p, q) for q in points)[k] for p in points]

    r_real, r_fake = radii(real), radii(fake)
    inside = [[math.dist(y, x) < r for x, r in zip(real, r_real)] for y in fake]
    return {"precision": sum(any(row) for row in inside) / len(fake),
            "recall": sum(any(math.dist(x, y) < r for y, r in zip(fake, r_fake)) for x in real) / len(real),
            "density": sum(sum(row) for row in inside) / (k * len(fake)),
            "coverage": sum(min(math.dist(x, y) for y in fake) < r for x, r in zip(real, r_real)) / len(real)}


@pytest.mark.parametrize("seed, k, chunk", [(1, 1, 1024), (3, 2, 64), (1, 3, 1024), (2, 5, 1024)])
def test_prdc_with_duplicated_points_follows_the_definition(seed, k, chunk):
    """Fakes that are copies of real points lie exactly on real radii (strictly: outside), and duplicated
    reals have neighbours at distance 0: every distance must be computed the same way on both sides.
    (With torch.cdist's |a|² + |b|² - 2ab shortcut each of these cases differed, by up to 0.028.)"""
    from gantricks.metrics import prdc

    g = torch.Generator().manual_seed(seed)
    real = torch.randn(200, 64, generator=g).relu()                  # features after a ReLU
    real[-50:] = real[:50]                                           # duplicated real points
    fake = torch.cat([real[25:100], torch.randn(66, 64, generator=g)])   # copies of reals, and others
    fake = fake[torch.randperm(len(fake), generator=g)]
    ours = prdc(real, fake, k=k, chunk=chunk)
    ref = prdc_by_definition(real.double().tolist(), fake.double().tolist(), k)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
