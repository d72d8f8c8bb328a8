"""benchmarks/fingerprint.py: a run cut short is the start of the bench's own run, and two fingerprints are
compared at their first differing step."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_cut_run_is_the_start_of_the_longer_run(tmp_path):
    import fingerprint

    # the bench's schedule for 400 steps: log every 2, evaluate and checkpoint every 40
    short = fingerprint.fingerprint(tmp_path / "short", seed=3, steps=400, stop=44, every=2)
    longer = fingerprint.fingerprint(tmp_path / "long", seed=3, steps=400, stop=84, every=2)
    assert sorted(short["losses"]) == list(range(2, 45, 2))
    assert all(longer["losses"][step] == losses for step, losses in short["losses"].items())
    assert [e["step"] for e in short["evals"]] == [40, 44] and [e["step"] for e in longer["evals"]] == [40, 80, 84]
    assert short["evals"][0] == longer["evals"][0]        # the step-40 evaluation, as the bench's run has it
    # a different run really differs
    other = fingerprint.fingerprint(tmp_path / "other", seed=4, steps=400, stop=4, every=2)
    assert other["losses"][2] != short["losses"][2]
    # settings apply over the cell's own, as the bench's --set
    faster = fingerprint.fingerprint(tmp_path / "lr", seed=3, steps=400, stop=4, every=2, settings={"lr_d": "3e-2"})
    assert faster["run"]["settings"] == {"lr_d": "3e-2"} and faster["losses"][2] != short["losses"][2]
    assert set(short["machine"]) == {"torch", "cpu_capability", "cpu"}
    json.dumps(short)


def test_first_difference_names_the_step():
    import fingerprint

    a = {"losses": {"25": [1.0, 2.0], "50": [1.5, 2.5], "75": [1.25, 2.0]}, "evals": [{"step": 75, "modes": 3}]}
    b = {"losses": {"25": [1.0, 2.0], "50": [1.5, 2.5 * (1 + 2 ** -20)], "75": [1.0, 2.0]},
         "evals": [{"step": 75, "modes": 3}]}
    assert fingerprint.first_difference(a, b).startswith("first differ at step 50: ")
    assert "relative 9.5e-07" in fingerprint.first_difference(a, b)
    assert fingerprint.first_difference(a, a) == ("equal at all 3 common logged steps (to step 75); "
                                                  "1 equal evaluations")
    assert fingerprint.first_difference(a, {"losses": {"10": [0, 0]}, "evals": []}) == "no logged step in common"


def test_cli_refuses_a_stop_past_the_run(tmp_path, capsys):
    import fingerprint

    with pytest.raises(SystemExit):
        fingerprint.main([str(tmp_path / "run"), "--steps", "100", "--stop", "200"])
    assert "--stop must be in 1..--steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fingerprint.main([str(tmp_path / "run"), "--set", "lr_d"])
    assert "--set takes KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown cell 'no-such-cell'; cells are: baseline, "):
        fingerprint.main([str(tmp_path / "run"), "--cell", "no-such-cell"])
    (tmp_path / "bad.json").write_text("{not json")
    for paths in ([str(tmp_path / "none.json"), str(tmp_path / "none.json")], [str(tmp_path / "bad.json")] * 2):
        with pytest.raises(SystemExit) as exit_:
            fingerprint.main(["--compare", *paths])
        assert exit_.value.code == 2 and "--compare: " in capsys.readouterr().err
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("not ours")
    with pytest.raises(SystemExit) as exit_:
        fingerprint.main([str(theirs), "--steps", "10", "--stop", "2"])
    assert exit_.value.code == 2 and "not a gantricks run folder" in capsys.readouterr().err
    assert (theirs / "keep.txt").read_text() == "not ours"
