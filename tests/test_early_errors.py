"""A user's nets that do not fit a trick, and a G loss left empty, are named in one line (ConfigError),
before or at the first step, not with torch's shape error or ``reduce() of empty iterable``."""
import subprocess
import sys

import pytest
import torch
from conftest import tiny_nets
from torch import nn

import gantricks as gt
from gantricks.errors import ConfigError
from gantricks.tricks.base import Trick


def test_pacgan_with_an_unpacked_d_is_named_when_built_without_data_shape():
    """Before, with no data_shape the GAN built and the first step raised torch's
    ``mat1 and mat2 shapes cannot be multiplied``."""
    G, D = tiny_nets()
    with pytest.raises(ConfigError, match=r"trick 'pacgan' feeds D inputs of shape \(batch, 4\) made from G's "
                                          r"samples of shape \(2,\); D failed on them \(.*\); build D for that input"):
        gt.GAN(G, D, z_dim=2, tricks=["pacgan"])
    G, D = tiny_nets()
    with pytest.raises(ConfigError, match=r"trick 'pacgan' feeds D inputs of shape \(batch, 6\)"):
        gt.GAN(G, D, z_dim=2, tricks=["pacgan:m=3"])
    G, D = tiny_nets()
    D[0] = nn.Linear(4, 16)                     # built for packs of two
    gan = gt.GAN(G, D, z_dim=2, tricks=["pacgan"])
    assert set(gan.step(torch.randn(16, 2))) >= {"d_loss", "g_loss"}


def test_a_real_batch_of_another_shape_is_named_at_the_first_step():
    G, D = tiny_nets()
    D[0] = nn.Linear(4, 16)
    gan = gt.GAN(G, D, z_dim=2, tricks=["pacgan"])
    with pytest.raises(ConfigError, match=r"a real batch of shape \(16, 3\) does not fit the generator's samples "
                                          r"of shape \(2,\)"):
        gan.step(torch.randn(16, 3))


class EmptyObjective(Trick):
    """Replaces G's loss, but on some steps has nothing to add."""

    name = "empty-objective"
    replaces_g_loss = True

    def g_terms(self, ctx):
        return {}


def test_a_replaced_g_loss_left_empty_is_named():
    """Before: ``TypeError: reduce() of empty iterable with no initial value``."""
    G, D = tiny_nets()
    gan = gt.GAN(G, D, z_dim=2, tricks=[EmptyObjective()])
    with pytest.raises(ConfigError, match="G has no loss at step 0: trick 'empty-objective' replaces the "
                                          "adversarial G loss \\(replaces_g_loss\\) but its g_terms returned no term"):
        gan.step(torch.randn(8, 2))


def test_cli_pacgan_with_a_d_not_built_for_it_is_one_line(tmp_path):
    """From the command line gantricks builds D for the packs, so pacgan trains; a pack size that does not
    divide the batch is one line, exit 2."""
    base = [sys.executable, "-m", "gantricks", "train", "--steps", "2", "--eval-every", "0", "--eval-samples", "100",
            "--no-progress", "--batch-size", "16", "--generator", "mlp:width=8,depth=1",
            "--discriminator", "mlp:width=8,depth=1,maxout=1"]
    ok = subprocess.run([*base, "--out", str(tmp_path / "ok"), "--trick", "pacgan"], capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*base, "--out", str(tmp_path / "bad"), "--trick", "pacgan:m=3"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
