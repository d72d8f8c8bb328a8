"""The mode-collapse schemes and tricks from the command line, on ring8 and grid25, and back from a run folder."""
from __future__ import annotations

import json

import pytest
import torch
from _modes_util import one_thread  # noqa: F401  (autouse fixture)

from gantricks.cli import main
from gantricks.train import open_run

RUNS = [("--scheme", "ebgan"), ("--scheme", "madgan"), ("--scheme", "mrgan"), ("--scheme", "mdgan"),
        ("--trick", "minibatch-discrimination"), ("--trick", "minibatch-stddev"), ("--trick", "pacgan:m=3")]
SMALL = ["--steps", "3", "--batch-size", "24", "--eval-samples", "120", "--no-progress",
         "--generator", "mlp:width=32,depth=2"]


@pytest.mark.parametrize("data", ["ring8", "grid25"])
@pytest.mark.parametrize("flag,value", RUNS, ids=[v for _, v in RUNS])
def test_trains_from_the_cli(tmp_path, capsys, data, flag, value):
    out = tmp_path / "run"
    assert main(["train", "--data", data, flag, value, "--out", str(out), *SMALL]) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["step"] == 3 and final["modes"] == (8 if data == "ring8" else 25)
    _, gan, _, _ = open_run(out)            # the checkpoint rebuilds every module the scheme added
    assert gan.step_count == 3 and gan.sample(5).shape == (5, 2)
    assert torch.isfinite(gan.sample(5)).all()


def test_cli_refuses_bad_combinations_in_one_line(tmp_path, capsys):
    code = main(["train", "--data", "ring8", "--scheme", "madgan", "--discriminator", "mlp:outputs=2",
                 "--out", str(tmp_path / "a"), *SMALL])
    assert code == 2 and "needs D with 5 outputs" in capsys.readouterr().err
    code = main(["train", "--data", "ring8", "--trick", "pacgan:m=5", "--out", str(tmp_path / "b"), *SMALL])
    assert code == 2 and "multiple of 5" in capsys.readouterr().err
