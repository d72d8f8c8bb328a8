"""The JSON-lines files gantricks appends to: a run's ``metrics.jsonl``, a bench's ``results.jsonl``.

One rule for all their readers: a last line without its newline that does not parse was cut by a kill while it
was written, and is left out; any other line that is not one JSON object is an error naming the file and the
line, never the silent end of the records. Floats that JSON has no word for are written as the strings
``"inf"``, ``"-inf"`` and ``"nan"``, and read back as floats by :func:`number`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TextIO

from .errors import ConfigError

NON_FINITE = ("inf", "-inf", "nan")
_KINDS = {list: "a list", str: "a string", bool: "true or false", type(None): "null"}


def word(value: Any) -> Any:
    """``value``, with a non-finite float as its string (``"inf"``, ``"-inf"``, ``"nan"``)."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


def number(value: Any) -> Any:
    """``value``, with the strings of :func:`word` made floats again."""
    return float(value) if isinstance(value, str) and value in NON_FINITE else value


def read(path: Path, hint: str = "") -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each line of ``path`` (none if it does not exist). A bad line other than a
    cut last one is a :class:`ConfigError`: ``"PATH, line N: WHY; HINT"``."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        *lines, cut = path.read_bytes().split(b"\n")      # cut: what follows the last newline
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None
    out = [(n, _parse(path, line, n, hint)) for n, line in enumerate(lines, 1) if line.strip()]
    if cut.strip():
        try:
            out.append((len(lines) + 1, _parse(path, cut, len(lines) + 1, hint)))
        except ConfigError:       # cut by a kill
            pass
    return out


def _parse(path: Path, line: bytes, n: int, hint: str) -> dict[str, Any]:
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        record, why = None, "not UTF-8 text"
    except (ValueError, RecursionError):
        record, why = None, "not JSON"
    else:
        why = f"JSON, but not an object ({_KINDS.get(type(record), 'a number')})"
    if not isinstance(record, dict):
        raise ConfigError(f"{path}, line {n}: {why}" + (f"; {hint}" if hint else ""))
    return record


def open_to_append(path: Path) -> TextIO:
    """``path`` opened to append lines, after ending a last line left without its newline by a kill (a line
    appended to it would be lost with it): cut off if it is not whole, given its newline if it is (as
    :func:`read` reads it: a line it counted stays)."""
    path = Path(path)
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            start = data.rfind(b"\n") + 1
            try:
                _parse(path, data[start:], 0, "")
            except ConfigError:              # not whole: read leaves it out, so it goes
                with path.open("r+b") as f:
                    f.truncate(start)
            else:
                with path.open("ab") as f:
                    f.write(b"\n")
    return path.open("a")
