"""The linear learning-rate decay: its formula, what the optimizers see, and bad values refused."""
import pytest

from gantricks.config import TrainConfig
from gantricks.errors import ConfigError
from gantricks.train import lr_factor, train


def test_factor_is_one_then_linear_to_zero():
    c = TrainConfig(steps=100, lr_decay="linear", lr_decay_start=0.6)
    assert [lr_factor(c, s) for s in (0, 30, 59)] == [1.0, 1.0, 1.0]
    for s in (60, 70, 85, 99):     # the step after s steps: (1 - s/100) / 0.4
        assert lr_factor(c, s) == pytest.approx((100 - s) / 40)
    assert lr_factor(TrainConfig(steps=100), 99) == 1.0          # no decay unless asked


def test_the_optimizers_follow_the_schedule(tmp_path):
    seen = []
    config = TrainConfig(steps=20, lr_g=2e-3, lr_d=1e-3, lr_decay="linear", lr_decay_start=0.5, batch_size=16,
                         generator="mlp:width=8,depth=1", discriminator="mlp:width=8,depth=1,maxout=1",
                         eval_every=0, checkpoint_every=0, eval_samples=100, progress=False)
    train(config, tmp_path / "run", on_step=lambda gan, logs: seen.append(
        (gan.optimizers["G"].param_groups[0]["lr"], gan.optimizers["D"].param_groups[0]["lr"])))
    for step, (lr_g, lr_d) in enumerate(seen):       # the rate used by step `step` (0-based)
        f = 1.0 if step < 10 else (20 - step) / 10
        assert lr_g == pytest.approx(2e-3 * f) and lr_d == pytest.approx(1e-3 * f)
    assert seen[-1][0] == pytest.approx(2e-4)


@pytest.mark.parametrize("start", [-0.1, 1.0, 2.0])
def test_bad_start_refused(start):
    with pytest.raises(ConfigError, match="lr_decay_start"):
        TrainConfig(lr_decay="linear", lr_decay_start=start)
