"""Every stabilising trick and mode-collapse scheme runs on Stacked MNIST from the CLI.

Two steps each with tiny DCGAN nets, ending in the run's evaluation (Stacked MNIST modes and KL,
FID in the digit classifier's space), so the whole path a user takes is exercised. Parametrized over
the registries, so a technique added later is covered too.
"""
from __future__ import annotations

import json

import pytest

from gantricks.bench import cells
from gantricks.cli import main
from gantricks.registry import schemes, tricks

from _tricks_util import suitable_loss

ARGS = ["--data", "stacked-mnist:train_images=512", "--generator", "dcgan:width=4", "--discriminator",
        "dcgan:width=4", "--z-dim", "8", "--batch-size", "12", "--steps", "2", "--eval-every", "0",
        "--eval-samples", "48", "--checkpoint-every", "0", "--no-progress"]
UNPAIRED_SCHEMES = [n for n in schemes.names() if n != "standard" and f"{n}" in cells()]


def _train(tmp_path, capsys, *extra) -> dict:
    assert main(["train", "--out", str(tmp_path / "run"), *ARGS, *extra]) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["step"] == 2 and final["modes"] == 1000
    assert 1 <= final["modes_covered"] <= 48 and final["kl_to_uniform"] >= 0
    assert (tmp_path / "run" / "plots" / "samples-00000002.png").exists()
    return final


@pytest.mark.parametrize("name", tricks.names())
def test_every_trick_on_stacked_mnist_from_the_cli(tmp_path, capsys, name):
    _train(tmp_path, capsys, "--trick", name, "--loss", suitable_loss([name]))


@pytest.mark.parametrize("name", UNPAIRED_SCHEMES)
def test_every_scheme_on_stacked_mnist_from_the_cli(tmp_path, capsys, name):
    _train(tmp_path, capsys, "--scheme", name)
