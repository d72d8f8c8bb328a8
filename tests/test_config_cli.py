"""Configs, specs and the command line: bad input gives one line, exit 2, and nothing is clobbered."""
import json
import subprocess
import sys

import pytest

from conftest import main_in_process
from gantricks.cli import main
from gantricks.config import TrainConfig, from_mapping, load_toml
from gantricks.errors import ConfigError
from gantricks.registry import Spec

SMALL = ["--generator", "mlp:width=16,depth=2", "--discriminator", "mlp:width=16,depth=2,maxout=2",
         "--batch-size", "32", "--eval-samples", "500", "--no-progress"]


def test_spec_parsing():
    s = Spec.parse("label-smoothing:real=0.9, every=4")
    assert s.name == "label-smoothing" and s.options == {"real": "0.9", "every": "4"}
    assert str(Spec.parse({"name": "r1", "gamma": 10})) == "r1:gamma=10"
    with pytest.raises(ConfigError, match="key=value"):
        Spec.parse("r1:gamma")


def test_config_validation():
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(ConfigError, match="lr_g must be a positive"):
        TrainConfig(lr_g=-1.0)
    with pytest.raises(ConfigError, match="unknown key 'stpes'"):
        from_mapping({"stpes": 3})
    with pytest.raises(ConfigError, match="must be an integer"):
        from_mapping({"steps": "many"})
    assert from_mapping({"steps": "7", "tricks": ["a:x=1"]}).steps == 7
    # tricks as one string: one trick, or the bracketed list `gantricks list` prints for a recipe
    assert from_mapping({"tricks": "r1:weight=2"}).tricks == ("r1:weight=2",)
    assert from_mapping({"tricks": "[ema r1:weight=2]"}).tricks == ("ema", "r1:weight=2")
    assert from_mapping({"tricks": "[]"}).tricks == () and from_mapping({"tricks": " [ema] "}).tricks == ("ema",)
    with pytest.raises(ConfigError, match=r"'tricks' '\[ema, r1\]': separate the tricks in \[...\] with spaces"):
        from_mapping({"tricks": "[ema, r1]"})


def test_toml_round_trip_and_malformed(tmp_path):
    from gantricks.config import to_toml

    c = TrainConfig(steps=11, tricks=("a:x=1", "b"), data="grid25:train_points=0")
    p = tmp_path / "c.toml"
    p.write_text(to_toml(c))
    assert load_toml(p) == c
    p.write_text("steps = = 3\n")
    with pytest.raises(ConfigError, match="malformed TOML"):
        load_toml(p)


def _run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gantricks", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--loss", "nope"], "unknown loss 'nope'; choose one of: hinge, least-squares, minimax"),
    (["--data", "ring9"], "unknown dataset 'ring9'"),
    (["--steps", "-3"], "steps must be >= 1"),
    (["--generator", "mlp:wdth=3"], "has no option 'wdth'"),
    (["--trick", "no-such-trick"], "unknown trick 'no-such-trick'"),
    (["--device", "cuda:7"], "no CUDA device"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    """In this process (the CLI's main, as the console script calls it); the tests below start real ones."""
    rc, lines = main_in_process(["train", "--out", str(tmp_path / "run"), "--steps", "2", *SMALL, *args], capsys)
    assert rc == 2 and len(lines) == 1 and message in lines[0], lines        # a warning would be a line too
    assert not (tmp_path / "run").exists()


def test_malformed_toml_and_existing_run_folder(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[[")
    r = _run_cli("train", "--config", str(bad), "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "malformed TOML" in r.stderr and len(r.stderr.strip().splitlines()) == 1

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--steps", "3", "--eval-every", "0", *SMALL]) == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    r = _run_cli("train", "--out", str(run), "--steps", "3", *SMALL)
    assert r.returncode == 2 and "already exists" in r.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before   # untouched

    other = tmp_path / "notarun"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    r = _run_cli("train", "--out", str(other), "--steps", "3", "--overwrite", *SMALL)
    assert r.returncode == 2 and "not a gantricks run folder" in r.stderr
    assert (other / "thesis.tex").read_text() == "precious"


def test_train_eval_sample_end_to_end(tmp_path, capsys):
    run = tmp_path / "ring"
    assert main(["train", "--data", "ring8", "--loss", "nonsaturating", "--steps", "40", "--seed", "0",
                 "--eval-every", "20", "--checkpoint-every", "20", "--out", str(run), *SMALL]) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("modes_covered", "high_quality_pct", "reverse_kl"):
        assert key in final
    for name in ("config.toml", "metrics.jsonl", "plots/samples-00000040.png", "plots/losses.png",
                 "checkpoints/step-00000040.pt"):
        assert (run / name).exists(), name
    assert list((run / "tb").iterdir())

    assert main(["eval", str(run)]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["step"] == 40 and {"modes_covered", "high_quality_pct", "reverse_kl"} <= ev.keys()

    for suffix in (".npy", ".pt", ".png"):
        out = tmp_path / f"s{suffix}"
        assert main(["sample", str(run), "-n", "100", "--seed", "0", "--out", str(out)]) == 0
        assert out.stat().st_size > 0
    import numpy as np
    a = np.load(tmp_path / "s.npy")
    assert a.shape == (100, 2)
    r = _run_cli("sample", str(run), "-n", "10", "--out", str(tmp_path / "s.npy"))
    assert r.returncode == 2 and "exists" in r.stderr
    assert np.array_equal(np.load(tmp_path / "s.npy"), a)


def test_list_names_every_kind(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("datasets:", "nets:", "losses:", "tricks:", "schemes:", "ring8", "grid25", "mlp", "hinge",
                 "standard", "Goodfellow", "recipes:"):
        assert word in out
    recipes = out.split("recipes:\n")[1].splitlines()
    assert recipes[0].split()[0] == "recommended" and "scheme=madgan:generators=4,diversity=1" in recipes[0]
    assert recipes[1].split() == ["madgan-sharp", "=", "recommended"]


def test_config_file_and_flags(tmp_path):
    cfg = tmp_path / "e.toml"
    cfg.write_text('data = "grid25"\nsteps = 50\nloss = "hinge"\n')
    run = tmp_path / "r"
    assert main(["train", "--config", str(cfg), "--steps", "4", "--eval-every", "0", "--out", str(run),
                 *SMALL]) == 0
    saved = load_toml(run / "config.toml")
    assert saved.data == "grid25" and saved.loss == "hinge" and saved.steps == 4   # the flag wins


def test_python_module_entry_point():
    r = _run_cli("list", "loss")
    assert r.returncode == 0 and "least-squares" in r.stdout


def test_recipe_sets_the_config_and_flags_override_it(tmp_path):
    from gantricks.cli import main
    from gantricks.config import load_toml
    from gantricks.recipes import RECIPES

    assert main(["train", "--recipe", "recommended", "--data", "ring8", "--steps", "4", "--eval-every", "0",
                 "--batch-size", "16", "--lr-g", "5e-4", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    config = load_toml(tmp_path / "run" / "config.toml")
    recipe = RECIPES["recommended"]
    assert config.scheme == recipe["scheme"] and config.generator == recipe["generator"]
    assert config.lr_d == recipe["lr_d"] and config.lr_decay == recipe["lr_decay"]
    assert (config.steps, config.lr_g, config.batch_size) == (4, 5e-4, 16)      # the flags win
    assert recipe["steps"] == 10_000          # without --steps, the length it was measured at


def test_unknown_recipe_is_one_line_exit_2(tmp_path):
    done = _run_cli("train", "--recipe", "best-ever", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert done.returncode == 2
    from gantricks.recipes import RECIPES
    assert done.stderr.strip().splitlines() == ["gantricks: error: unknown recipe 'best-ever'; choose one of: "
                                                + ", ".join(RECIPES)]


@pytest.mark.parametrize("name", ["wgan-gp-paper", "dragan-paper", "pacgan-paper", "recommended"])
def test_a_recipe_as_gantricks_list_prints_it_is_the_recipe_again(name, capsys):
    """`gantricks list NAME` prints a recipe's settings in the form a config and --set read back."""
    from gantricks.recipes import RECIPES

    assert main(["list", name]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith(f"recipe {name}: ")][0]
    printed = dict(item.split("=", 1) for item in line.split(": ", 1)[1].split())
    assert from_mapping(printed) == from_mapping(RECIPES[name])
