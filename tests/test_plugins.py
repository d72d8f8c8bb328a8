"""A user's components from a separate module: ``--import MODULE`` (saved in the run's config, so eval,
sample, diagnose and --resume import it too) and an installed package's entry points."""
import json
import os
import subprocess
import sys

import pytest

from gantricks.config import TrainConfig
from gantricks.errors import ConfigError

PLUGIN = '''
"""A user's trick, registered on import with the public registry."""
import torch
from gantricks.registry import tricks
from gantricks.tricks import Trick


@tricks.register("center-penalty", paper="a user's idea", summary="penalises D's mean real logit away from 0")
class CenterPenalty(Trick):
    def __init__(self, weight: float = 0.1):
        self.weight = weight

    def d_terms(self, ctx):
        return {"center": self.weight * ctx.real_logits.mean() ** 2}
'''

ENTRY_POINT_MODULE = '''
from gantricks.tricks import Trick


class Shift(Trick):
    """adds a constant 0 term to G's loss (an entry-point trick)"""

    def g_terms(self, ctx):
        return {"shift": ctx.fake_logits.mean() * 0}
'''

SMALL = ["--generator", "mlp:width=8,depth=1", "--discriminator", "mlp:width=8,depth=1,maxout=1", "--batch-size",
         "16", "--eval-every", "0", "--eval-samples", "100", "--no-progress", "--checkpoint-every", "3", "--log-every", "1"]


def _run(args, path, check=True):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "gantricks", *args], capture_output=True, text=True, env=env,
                       timeout=180)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_an_imported_trick_trains_evaluates_samples_diagnoses_and_resumes(tmp_path):
    (tmp_path / "my_gan_plugin.py").write_text(PLUGIN)
    run = tmp_path / "run"
    r = _run(["train", "--import", "my_gan_plugin", "--trick", "center-penalty:weight=0.5", "--steps", "4",
              "--out", str(run), *SMALL], tmp_path)
    text = (run / "config.toml").read_text()
    assert 'imports = ["my_gan_plugin"]' in text and '"center-penalty:weight=0.5"' in text
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("center" in rec for rec in logged)          # its D term ran
    assert json.loads(_run(["eval", str(run)], tmp_path).stdout)["step"] == 4
    _run(["sample", str(run), "-n", "10", "--out", str(tmp_path / "s.npy")], tmp_path)
    _run(["diagnose", str(run)], tmp_path)
    _run(["train", "--out", str(run), "--resume", "--steps", "6", *SMALL], tmp_path)       # no --import given
    assert json.loads(_run(["eval", str(run)], tmp_path).stdout)["step"] == 6


def test_a_missing_module_is_one_line_exit_2(tmp_path):
    r = _run(["train", "--import", "no_such_gantricks_plugin", "--out", str(tmp_path / "r"), *SMALL], tmp_path,
             check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "cannot import module 'no_such_gantricks_plugin'" in r.stderr and not (tmp_path / "r").exists()


@pytest.mark.parametrize("imports, message", [(("not a module",), "is not a Python module name"),
                                              (("no_such_gantricks_plugin",), "cannot import module")])
def test_bad_imports_refused_in_the_config(imports, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(imports=imports)


def test_an_entry_point_trick_is_found_without_import(tmp_path):
    (tmp_path / "ep_gan_plugin.py").write_text(ENTRY_POINT_MODULE)
    info = tmp_path / "ep_gan_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-gan-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[gantricks.tricks]\nshift = ep_gan_plugin:Shift\n")
    listed = _run(["list", "trick"], tmp_path).stdout
    assert "shift" in listed and "adds a constant 0 term" in listed and "[touches: G loss]" in listed
    run = tmp_path / "run"
    _run(["train", "--trick", "shift", "--steps", "2", "--out", str(run), *SMALL], tmp_path)
    assert '"shift"' in (run / "config.toml").read_text()
