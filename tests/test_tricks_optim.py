"""The tricks that are config fields, not Trick objects: TTUR (lr_g / lr_d), n_critic, dropout in G."""
from __future__ import annotations

import torch
from torch import nn

import gantricks as gt
from gantricks.build import build_gan
from gantricks.cli import main
from gantricks.config import TrainConfig

from _tricks_util import make_gan, ring_batch, single_thread  # noqa: F401  (autouse fixture)


def _adam_steps(opt: torch.optim.Optimizer) -> set[int]:
    return {int(state["step"]) for state in opt.state.values()}


def test_ttur_gives_each_optimizer_its_own_rate_and_adam_moves_by_it():
    gan = make_gan([], lr_g=1e-4, lr_d=4e-4)
    assert [g["lr"] for g in gan.optimizers["G"].param_groups] == [1e-4]
    assert [g["lr"] for g in gan.optimizers["D"].param_groups] == [4e-4]
    before = {k: [p.detach().clone() for p in gan.modules[k].parameters()] for k in ("G", "D")}
    gan.step(ring_batch())
    for name, lr in (("G", 1e-4), ("D", 4e-4)):
        # Adam's first step moves every parameter with a gradient by lr·g/(|g| + eps) ≈ lr
        moved = torch.cat([(p.detach() - b).abs().flatten() for p, b in zip(gan.modules[name].parameters(),
                                                                          before[name])])
        assert abs(moved.max().item() - lr) < 0.01 * lr


def test_ttur_from_the_config():
    gan = build_gan(TrainConfig(lr_g=2e-4, lr_d=3e-4, generator="mlp:width=8,depth=1",
                                discriminator="mlp:width=8,maxout=2"), (2,))
    assert gan.optimizers["G"].param_groups[0]["lr"] == 2e-4 and gan.optimizers["D"].param_groups[0]["lr"] == 3e-4


def test_n_critic_d_takes_n_updates_per_g_update():
    gan = make_gan([], n_critic=3)
    drawn = []

    def next_real() -> torch.Tensor:
        drawn.append(len(drawn))
        return ring_batch(seed=len(drawn))
    for _ in range(2):
        gan.step(next_real)
    assert _adam_steps(gan.optimizers["D"]) == {6}
    assert _adam_steps(gan.optimizers["G"]) == {2}
    assert len(drawn) == 6                                     # a fresh real batch for every D update


def test_generator_dropout_from_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", "ring8", "--generator", "mlp:dropout=0.5,width=32,depth=2",
                 "--discriminator", "mlp:width=16,maxout=2", "--steps", "3", "--batch-size", "16",
                 "--eval-samples", "100", "--eval-every", "0", "--checkpoint-every", "0", "--no-progress",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    _, gan, _, _ = gt.open_run(out)
    dropouts = [m for m in gan.G.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 2 and all(m.p == 0.5 for m in dropouts)
    z = torch.randn(64, 2)
    gan.G.train()
    assert not torch.equal(gan.G(z), gan.G(z))                 # active while training
    gan.G.eval()
    assert torch.equal(gan.G(z), gan.G(z))                     # off for sampling
    torch.testing.assert_close(gan.sample(8, generator=torch.Generator().manual_seed(0)),
                               gan.sample(8, generator=torch.Generator().manual_seed(0)))
