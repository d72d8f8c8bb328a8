"""One process per run folder: an OS lock (``flock``) on ``RUN/.lock``.

The kernel drops the lock when its process dies, however it dies, so a run killed with
SIGKILL does not block its own ``--resume``: there is no stale lock to clear by hand. The
file holds the holder's pid, which the refusal names. On systems without ``fcntl``
(Windows) the lock is skipped.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError, RunFolderBusy

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows)
    fcntl = None

LOCK_NAME = ".lock"


def write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file renamed over it: a reader never sees half a file, and a
    link at ``path`` is replaced, not written through."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`write_atomic` (or of the older ``NAME.tmp`` form), which
    a process killed before its rename leaves behind."""
    return (name.startswith(".") and ".tmp-" in name) or name.endswith(".tmp")


class RunLock:
    """The held lock of one run folder; :meth:`release` (or the process's death) frees it."""

    def __init__(self, root: Path, fd: int, created: bool):
        self.root, self._fd, self.created = root, fd, created   # created: this process made the lock file

    @classmethod
    def acquire(cls, root: "str | Path") -> "RunLock":
        """Lock ``root`` (created if missing); :class:`RunFolderBusy` naming the holder's pid if another
        process has it, :class:`ConfigError` if the folder cannot be made."""
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            created = not (root / LOCK_NAME).exists()
            fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ConfigError(f"cannot create run folder {root}: {err.strerror or err}") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunFolderBusy(f"run folder {root} is in use by another gantricks process (pid {holder}); "
                                    f"wait for it to finish or stop it, or choose another --out") from None
        return cls(root, fd, created)

    def write_pid(self) -> None:
        """Name this process as the holder (done once the folder is claimed, so a refused start leaves the
        file as it found it)."""
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self, remove: bool = False) -> None:
        """Unlock; ``remove`` also deletes the lock file (when the folder itself is being removed)."""
        if self._fd is None:
            return
        if remove:
            (self.root / LOCK_NAME).unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None
