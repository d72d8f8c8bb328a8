"""The one reader of the JSON-lines files gantricks appends to (gantricks.jsonl)."""
import json
import math

import pytest

from gantricks import jsonl
from gantricks.errors import ConfigError


def test_each_line_comes_with_its_number_and_a_cut_last_line_is_left_out(tmp_path):
    path = tmp_path / "x.jsonl"
    assert jsonl.read(path) == []                                  # not written yet
    path.write_bytes(b'{"a": 1}\n\n{"b": 2}\n{"c": 3, "d"')          # a blank line; the last cut by a kill
    assert jsonl.read(path) == [(1, {"a": 1}), (3, {"b": 2})]
    path.write_bytes(b'{"a": 1}\n{"b": 2}')                          # whole, without its newline: kept
    assert jsonl.read(path) == [(1, {"a": 1}), (2, {"b": 2})]


@pytest.mark.parametrize("line, why", [
    (b"{garbage", "line 2: not JSON; HINT"),
    (b"[1, 2]", "line 2: JSON, but not an object (a list); HINT"),
    (b"7", "line 2: JSON, but not an object (a number); HINT"),
    (b'"s"', "line 2: JSON, but not an object (a string); HINT"),
    (b"null", "line 2: JSON, but not an object (null); HINT"),
    (b'{"caf\xe9": 1}', "line 2: not UTF-8 text; HINT"),
])
def test_any_other_bad_line_names_file_and_line(tmp_path, line, why):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n' + line + b'\n{"b": 2}\n')
    with pytest.raises(ConfigError) as err:
        jsonl.read(path, "HINT")
    assert str(err.value) == f"{path}, {why}"


def test_a_folder_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        jsonl.read(tmp_path)


def test_non_finite_floats_go_through_json_as_words_and_come_back():
    values = [float("inf"), float("-inf"), float("nan"), 1.5, "inf text", 3, None]
    words = json.loads(json.dumps([jsonl.word(v) for v in values]))
    assert words[:3] == ["inf", "-inf", "nan"] and words[3:] == [1.5, "inf text", 3, None]
    back = [jsonl.number(w) for w in words]
    assert back[0] == math.inf and back[1] == -math.inf and math.isnan(back[2]) and back[3:] == values[3:]


def test_appending_ends_a_cut_last_line_by_the_rule_read_uses(tmp_path):
    """A last line without its newline stays only if read counts it: a whole object does, and JSON that is not
    an object (a cut "12" of "123...") goes like any cut line."""
    path = tmp_path / "x.jsonl"
    for tail, kept in ((b'{"b": 2}', [{"a": 1}, {"b": 2}]), (b"12", [{"a": 1}]), (b'{"b"', [{"a": 1}])):
        path.write_bytes(b'{"a": 1}\n' + tail)
        with jsonl.open_to_append(path) as f:
            f.write('{"c": 3}\n')
        assert [r for _, r in jsonl.read(path)] == kept + [{"c": 3}], tail
