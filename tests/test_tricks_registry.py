"""Every registered trick through its registry: smoke + exact checkpoint round trip, every pair
together, and the CLI. Parametrized at collection time, so tricks added later are included."""
from __future__ import annotations

import io
import itertools

import pytest
import torch

import gantricks as gt
from gantricks.cli import main
from gantricks.errors import ConfigError
from gantricks.registry import tricks as trick_registry
from gantricks.tricks.base import Trick

from _tricks_util import BATCH, batch_for, make_gan, suitable_loss, single_thread  # noqa: F401  (autouse fixture)

NAMES = trick_registry.names()
PAIRS = list(itertools.combinations(NAMES, 2))


def declared_conflict(a: str, b: str) -> bool:
    """Whether two tricks, with their defaults, say they cannot go together."""
    ta, tb = trick_registry.build(a), trick_registry.build(b)
    return bool(set(ta.exclusive) & set(tb.exclusive)) or (ta.replaces_g_loss and tb.replaces_g_loss)


def test_every_trick_declares_what_it_touches():
    for entry in trick_registry:
        trick = entry.factory()
        assert isinstance(trick, Trick) and trick.name == entry.name
        assert entry.touches and entry.paper and entry.summary, entry.name


@pytest.mark.parametrize("name", NAMES)
def test_trick_smoke_and_exact_checkpoint_round_trip(name):
    loss = suitable_loss([name])
    real = batch_for([name], BATCH)
    gan = make_gan([name], loss)
    for _ in range(3):
        logs = gan.step(real)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs

    buffer = io.BytesIO()
    torch.save(gan.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed = make_gan([name], loss, seed=1)            # other initial weights: the load must fix them
    resumed.load_state_dict(state)                      # also restores the RNG

    after_resume = resumed.step(real)
    torch.set_rng_state(state["rng"]["torch"])
    after_original = gan.step(real)
    assert after_resume == after_original
    noise = torch.Generator().manual_seed(3)
    torch.testing.assert_close(resumed.sample(16, generator=noise),
                               gan.sample(16, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("a,b", PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_pairs_train_together_or_are_refused(a, b):
    if declared_conflict(a, b):
        with pytest.raises(ConfigError, match=f"{a}.*{b}|{b}.*{a}"):
            make_gan([a, b], suitable_loss([a, b]))
        return
    gan = make_gan([a, b], suitable_loss([a, b]))
    real = batch_for([a, b], BATCH)
    for _ in range(2):
        logs = gan.step(real)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs


def test_two_target_setters_are_refused_with_a_reason():
    with pytest.raises(ConfigError, match="'label-smoothing' and 'noisy-labels' both replace the real targets"):
        make_gan(["label-smoothing", "noisy-labels"])
    make_gan(["label-smoothing", "label-flip"])    # a flip composes with either


def test_two_generator_loss_replacements_are_refused():
    class OtherObjective(Trick):
        name = "other-objective"
        replaces_g_loss = True

        def g_terms(self, ctx):
            return {"other": ctx.fake_logits.mean()}

    with pytest.raises(ConfigError, match="both replace the generator loss"):
        make_gan([OtherObjective(), "feature-matching:alone=true"])
    make_gan([OtherObjective(), "feature-matching:alone=false"])


def test_cli_trains_with_spectral_norm_and_label_smoothing(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", "ring8", "--trick", "spectral-norm", "--trick", "label-smoothing:real=0.9",
                 "--steps", "20", "--generator", "mlp:width=32", "--discriminator", "mlp:width=16,maxout=2",
                 "--batch-size", "32", "--eval-samples", "200", "--eval-every", "0",
                 "--checkpoint-every", "0", "--log-every", "10", "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    config, gan, _, state = gt.open_run(out)
    assert config.tricks == ("spectral-norm", "label-smoothing:real=0.9") and state["step"] == 20
    assert [t.name for t in gan.tricks] == ["spectral-norm", "label-smoothing"]
    assert gan.trick("label-smoothing").real == 0.9
    assert torch.nn.utils.parametrize.is_parametrized(gan.D.head, "weight")


def test_cli_refuses_label_tricks_with_a_loss_without_labels(tmp_path, capsys):
    code = main(["train", "--loss", "hinge", "--trick", "label-smoothing", "--steps", "2", "--no-progress",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "label-smoothing" in err and "hinge" in err, err
