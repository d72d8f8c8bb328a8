"""Stacked MNIST: the dataset, the mode count against a hand computation, the MNIST classifier (accuracy,
cache), evaluation and sample grids in a training run, `gantricks eval`, and the bench suite."""
import json
import math
import warnings

import pytest
import torch
from torch import nn

from gantricks import TrainConfig, train
from gantricks.bench import plan, run_bench
from gantricks.cli import main
from gantricks.data.stacked import StackedDigits
from gantricks.errors import ConfigError
from gantricks.metrics import classifier as clf_mod
from gantricks.metrics import stacked_mnist_modes
from gantricks.metrics.classifier import DigitClassifier, accuracy, digit_split, mnist_classifier, mnist_digits
from gantricks.metrics.stacked import mode_index
from gantricks.registry import datasets


@pytest.fixture(scope="module")
def classifier():
    return mnist_classifier()         # trained once (~20 s on one thread), then read from the cache


class ConstantDigit(nn.Module):
    """A stub classifier: an image filled with d / 4.5 - 1 is digit d."""

    def forward(self, x):
        value = (x.flatten(1).mean(1) + 1) * 4.5
        return -(value[:, None] - torch.arange(10, dtype=x.dtype)) ** 2


def constant_images(triples):
    return torch.tensor(triples, dtype=torch.float32)[:, :, None, None].expand(-1, -1, 28, 28) / 4.5 - 1


def test_modes_and_kl_match_a_hand_computation():
    triples = [(3, 1, 4)] * 5 + [(0, 0, 0)] * 3 + [(9, 9, 9)] * 2
    out = stacked_mnist_modes(constant_images(triples), ConstantDigit())
    assert out["modes_covered"] == 3 and out["modes"] == 1000 and out["samples"] == 10
    hand = 0.5 * math.log(1000 * 0.5) + 0.3 * math.log(1000 * 0.3) + 0.2 * math.log(1000 * 0.2)
    assert out["kl_to_uniform"] == pytest.approx(hand, rel=1e-12)
    counts = out["mode_counts"]
    assert (counts[314], counts[0], counts[999], sum(counts)) == (5, 3, 2, 10)
    # every mode once: KL 0; two channels: 100 modes
    every = [(i // 100, i // 10 % 10, i % 10) for i in range(1000)]
    assert stacked_mnist_modes(constant_images(every), ConstantDigit())["kl_to_uniform"] == pytest.approx(0, abs=1e-12)
    two = stacked_mnist_modes(constant_images([(1, 2), (1, 2)]), ConstantDigit())
    assert (two["modes"], two["modes_covered"], two["kl_to_uniform"]) == (100, 1, pytest.approx(math.log(100)))
    torch.testing.assert_close(mode_index(torch.tensor([[3, 1, 4], [0, 0, 7]])), torch.tensor([314, 7]))


def test_stacked_dataset_composes_pool_digits():
    data = datasets.build("stacked-mnist:train_images=300,pool=50", seed=3)
    assert isinstance(data, StackedDigits) and data.shape == (3, 28, 28) and data.modes == 1000 and len(data) == 300
    state = data.state_dict()
    idx_batch = data.combos[data.indices(8)]
    data.load_state_dict(state)
    batch = data(8)
    torch.testing.assert_close(batch, data.digits[idx_batch])            # channel c is pool digit combos[:, c]
    assert batch.min() >= -1 and batch.max() <= 1 and batch.shape == (8, 3, 28, 28)
    torch.testing.assert_close(data.labels, data.pool_labels[data.combos])
    images, labels = mnist_digits()
    torch.testing.assert_close(data.digits[:, None], images[:50])
    assert datasets.build("stacked-mnist:train_images=10,channels=2").modes == 100
    torch.testing.assert_close(data.reference(20), data.reference(20))
    with pytest.raises(ConfigError, match="train_images"):
        datasets.build("stacked-mnist:train_images=0")


def test_classifier_reaches_the_bar(classifier):
    images, labels = mnist_digits()
    _, held_out = digit_split(len(images))
    measured = accuracy(classifier, images[held_out], labels[held_out])
    assert measured >= 0.97 and measured == pytest.approx(classifier.held_out_accuracy)
    assert not any(p.requires_grad for p in classifier.parameters())


def test_corrupt_or_stale_cache_is_reported_and_retrained(tmp_path, monkeypatch):
    trained = []

    def fake_train(images, labels):
        trained.append(len(images))
        model = DigitClassifier()
        model.held_out_accuracy = 0.5
        return model.eval()

    monkeypatch.setattr(clf_mod, "train_digit_classifier", fake_train)
    monkeypatch.setattr(clf_mod, "mnist_digits", lambda: (torch.zeros(3, 1, 28, 28), torch.zeros(3)))
    path = tmp_path / f"mnist5k-classifier-v{clf_mod.VERSION}.pt"
    path.write_bytes(b"not a checkpoint")
    clf_mod._cached_classifier.cache_clear()
    with pytest.warns(UserWarning, match="cannot use the cached MNIST classifier"):
        first = mnist_classifier(tmp_path)
    assert trained == [3] and [p.name for p in tmp_path.iterdir()] == [path.name]   # no temporary left behind
    clf_mod._cached_classifier.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = mnist_classifier(tmp_path)                                     # whole now: loaded, not retrained
    assert trained == [3] and again.held_out_accuracy == 0.5
    torch.testing.assert_close(again.state_dict(), first.state_dict())
    state = torch.load(path, weights_only=True)
    torch.save({**state, "version": -1}, path)
    clf_mod._cached_classifier.cache_clear()
    with pytest.warns(UserWarning, match="version -1"):
        mnist_classifier(tmp_path)
    assert trained == [3, 3]
    clf_mod._cached_classifier.cache_clear()


def test_real_classifier_counts_modes_of_data_and_of_a_collapsed_sampler(classifier):
    data = datasets.build("stacked-mnist:train_images=20000")
    spread = stacked_mnist_modes(data.reference(2000), classifier)
    # 2,000 uniform draws over 1,000 modes hit about 1000 (1 - e^-2) = 865 of them
    assert 800 <= spread["modes_covered"] <= 900 and spread["kl_to_uniform"] < 0.6
    by_class = [torch.nonzero(data.pool_labels == d)[:20, 0] for d in (1, 7)]    # pool digits of two classes
    pool = torch.cat(by_class)
    collapsed = data.compose(pool[torch.randint(len(pool), (2000, 3), generator=torch.Generator().manual_seed(0))])
    out = stacked_mnist_modes(collapsed, classifier)
    true_modes = [100 * a + 10 * b + c for a in (1, 7) for b in (1, 7) for c in (1, 7)]     # 2^3 of them
    assert sum(out["mode_counts"][m] for m in true_modes) >= 0.9 * 2000                   # a few misread digits
    assert out["modes_covered"] <= 40 and out["kl_to_uniform"] > math.log(1000 / 8) - 0.5


def test_training_on_stacked_mnist_evaluates_and_draws_grids(tmp_path, classifier, capsys):
    config = TrainConfig(data="stacked-mnist:train_images=256", generator="dcgan:width=4",
                         discriminator="dcgan:width=4", z_dim=8, batch_size=8, steps=2, eval_every=1,
                         eval_samples=64, checkpoint_every=2, progress=False)
    final = train(config, tmp_path / "run")
    for key in ("modes_covered", "kl_to_uniform", "fid", "kid", "precision", "recall", "density", "coverage"):
        assert isinstance(final[key], (int, float)) and math.isfinite(final[key]), key
    assert final["modes"] == 1000 and sum(final["mode_counts"]) == 64
    assert sorted(p.name for p in (tmp_path / "run" / "plots").glob("samples-*.png")) == \
        ["samples-00000001.png", "samples-00000002.png"]
    assert (tmp_path / "run" / "plots" / "metrics.png").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / "run" / "tb")).Reload()
    assert "samples" in events.Tags()["images"] and "eval/kl_to_uniform" in events.Tags()["scalars"]
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--samples", "64"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["step"] == 2 and printed["kl_to_uniform"] == pytest.approx(final["kl_to_uniform"])


def test_bench_suite_runs_and_reports_beside_the_published_rows(tmp_path, classifier, monkeypatch):
    from gantricks import bench

    with pytest.raises(ConfigError, match="protocol 'pacgan' is for mixtures"):
        plan("stacked-mnist", ["baseline"], 1, 2, tmp_path, "pacgan")
    assert plan("stacked-mnist", ["baseline"], 1, 8, tmp_path, None)[0].config().eval_every == 2
    small = dict(bench.PROTOCOLS["dcgan-small"], eval_samples=64, generator="dcgan:width=4",
                 discriminator="dcgan:width=4")
    monkeypatch.setitem(bench.PROTOCOLS, "dcgan-small", small)
    results = run_bench("stacked-mnist", 1, 2, tmp_path, only=["baseline", "pacgan"], progress=False, protocol=None)
    assert [r["error"] for r in results] == [None, None]
    assert all(r["modes_covered"] >= 1 and r["kl_to_uniform"] is not None for r in results)
    report = (tmp_path / "report.md").read_text()
    assert "| cell | modes | KL | FID (digit features) | coverage |" in report
    assert "| PacGAN paper: PacDCGAN2 | 1000±0 | 0.06±0.003 |" in report and "| pacgan | " in report


@pytest.mark.parametrize("protocol, d_width", [("dcgan-small-d4", 8), ("dcgan-small-d2", 16)])
def test_small_d_protocols_are_table3s_setting_and_train_through_the_cli(protocol, d_width, tmp_path, classifier,
                                                                          monkeypatch, capsys):
    from gantricks import bench

    config = plan("stacked-mnist", ["baseline"], 1, 8, tmp_path, protocol)[0].config()
    assert config.discriminator == f"dcgan:width={d_width}" and config.generator == "dcgan:width=32"
    assert {k: v for k, v in bench.PROTOCOLS[protocol].items() if k != "discriminator"} == \
        {k: v for k, v in bench.PROTOCOLS["dcgan-small"].items() if k != "discriminator"}
    # a few steps through the CLI on smaller nets of the same ratio (the test's budget), D = G / (32 / d_width)
    monkeypatch.setitem(bench.PROTOCOLS, protocol, dict(bench.PROTOCOLS[protocol], eval_samples=64,
                                                        generator="dcgan:width=8",
                                                        discriminator=f"dcgan:width={d_width // 4}"))
    assert main(["bench", "--suite", "stacked-mnist", "--protocol", protocol, "--only", "baseline", "--seeds", "1",
                 "--steps", "2", "--workers", "1", "--out", str(tmp_path / "b")]) == 0
    line = json.loads((tmp_path / "b" / "results.jsonl").read_text().splitlines()[0])
    assert line["error"] is None and line["protocol"] == protocol and line["modes_covered"] >= 1
    assert "| PacGAN paper, D=¼G: DCGAN | 30.6 | 5.99 |" in (tmp_path / "b" / "report.md").read_text()
