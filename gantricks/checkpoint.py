"""Checkpoints: written atomically, the newest few kept, loaded with ``weights_only=True``.

A checkpoint is first written to a temporary file in the same folder, flushed to
disk, then renamed over its final name, so a kill while saving leaves the
previous checkpoints whole. Loading tries the newest and falls back to older
ones when a file is truncated or corrupt, with a warning; when none is usable,
the error names the newest one's problem and the older ones are warned of.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

PATTERN = re.compile(r"^step-(\d{8,})\.pt$")


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.pt"


def list_checkpoints(folder: "str | Path") -> list[Path]:
    """Checkpoint files in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(folder: "str | Path", step: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``state`` atomically as ``folder/step-NNNNNNNN.pt`` and prune all but the newest ``keep``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(folder, step)
    tmp = folder / f".{final.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(folder)
    finally:
        if tmp.exists():
            tmp.unlink()
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def load_checkpoint(path: "str | Path", map_location: "str | torch.device" = "cpu") -> dict[str, Any]:
    """Load one checkpoint with ``weights_only=True``; :class:`CheckpointError` if it is not whole."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception as err:  # truncated zip, bad pickle, foreign object: all mean "not usable"
        if re.search(r"Unsupported (global|class)", str(err)):    # a pickled object, not a broken file
            raise CheckpointError(f"checkpoint {path} was refused: it holds objects other than tensors and "
                                  f"plain data, which loading with weights_only=True does not run") from None
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(err).__name__})") from None
    if not isinstance(state, dict) or "gan" not in state or "step" not in state:
        raise CheckpointError(f"{path} is not a gantricks checkpoint")
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path} is not a gantricks checkpoint (its step is {step!r}, not a count of steps)")
    if not isinstance(state["gan"], dict):
        raise CheckpointError(f"{path} is not a gantricks checkpoint (its 'gan' entry is a "
                              f"{type(state['gan']).__name__}, not a dict)")
    return state


def load_latest(folder: "str | Path", map_location: "str | torch.device" = "cpu", set_aside: bool = False
                ) -> tuple[Path, dict[str, Any]]:
    """The newest whole checkpoint in ``folder``; unusable ones are skipped with a warning.

    With ``set_aside`` (a run resuming from it) each skipped file newer than the one loaded is renamed
    ``NAME.rejected``: kept for whoever wants to look, but no longer counted among the newest
    ``keep`` (which would prune a good checkpoint in its place) nor replaced by the resumed run's own
    checkpoint of that step. When none is usable nothing is renamed, so a second try fails the same way
    instead of finding no checkpoint and starting the run over.
    """
    candidates = list_checkpoints(folder)
    if not candidates:
        raise CheckpointError(f"no checkpoint in {folder}")
    problems: list[tuple[Path, CheckpointError]] = []
    for path in reversed(candidates):
        try:
            state = load_checkpoint(path, map_location)
        except CheckpointError as err:
            problems.append((path, err))
            continue
        for bad, err in problems:
            note = ""
            if set_aside:
                try:
                    bad.rename(bad.with_name(bad.name + ".rejected"))
                    note = f"; set aside as {bad.name}.rejected"
                except OSError:
                    pass
            warnings.warn(f"{err}{note}; loaded the older {path.name}", stacklevel=2)
        return path, state
    for _, err in problems[1:]:        # the newest one's problem is the error's own
        warnings.warn(str(err), stacklevel=2)
    older = len(problems) - 1
    more = f"; {older} older checkpoint{'s' if older > 1 else ''} unusable too (warned above)" if older else ""
    raise CheckpointError(f"no usable checkpoint in {folder}: {problems[0][1]}{more}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
