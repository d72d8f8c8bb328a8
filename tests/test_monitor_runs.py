"""The monitor on real training runs: it flags a plain GAN that collapses, and stays quiet on a healthy one.

Both runs are plain GANs (non-saturating loss, standard scheme, no trick) on ring8 with small MLPs,
short enough for CI. The collapsing one gives G a learning rate ten times D's and no batch norm:
G chases whatever D currently prefers and its samples bunch up within the first few hundred steps.
The healthy one gives both the same rate and G batch norm, and spreads over the ring.
"""
import json

from gantricks.cli import main
from gantricks.config import TrainConfig
from gantricks.train import RunDir, train

SMALL_D = "mlp:width=64,depth=2,maxout=1"


def _run(tmp_path, name, **overrides):
    config = TrainConfig(**{**dict(data="ring8", eval_every=250, eval_samples=1000, checkpoint_every=0,
                                   keep_checkpoints=1, log_every=10, progress=False, seed=0,
                                   discriminator=SMALL_D, beta1=0.5), **overrides})
    train(config, tmp_path / name)
    records = RunDir(tmp_path / name).records()
    return ([r for r in records if r["kind"] == "flag"], [r for r in records if r["kind"] == "eval"])


def test_a_collapsing_plain_gan_is_flagged_when_it_collapses(tmp_path, capsys):
    flags, evals = _run(tmp_path, "collapse", steps=500, generator="mlp:width=64,depth=2,batch_norm=false",
                        lr_g=2e-3, lr_d=2e-4)
    collapse = [f for f in flags if f["flag"] == "mode-collapse"]
    assert collapse, f"no mode-collapse flag; evals: {evals}"
    first = collapse[0]
    # raised at the evaluation where it began, and the samples there really are bunched up
    at = next(e for e in evals if e["step"] == first["step"])
    assert at["diversity_ratio"] < 0.3
    assert all(e["diversity_ratio"] >= 0.3 for e in evals if e["step"] < first["step"])
    assert "pacgan" in first["remedies"] and "unrolled" in first["remedies"]
    # the diagnosis of the run folder says so too
    assert main(["diagnose", str(tmp_path / "collapse")]) == 0
    out = capsys.readouterr().out
    assert "mode-collapse" in out and "pacgan" in out


def test_a_healthy_plain_gan_raises_no_flag(tmp_path):
    flags, evals = _run(tmp_path, "healthy", steps=1000, generator="mlp:width=64,depth=2",
                        lr_g=1e-3, lr_d=1e-3)
    assert flags == []
    assert len(evals) == 4
    # it is healthy by the monitor's own measure and by coverage: spread like the data, over the ring
    assert all(e["diversity_ratio"] > 0.8 for e in evals)
    assert max(e["modes_covered"] for e in evals) >= 6
