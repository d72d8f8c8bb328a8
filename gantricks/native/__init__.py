"""Native CPU kernels, built at first use with the system's C++ compiler and called through ctypes.

Some of a technique's arithmetic is a loop that torch's eager ops can only run as many passes over
large temporary tensors (minibatch discrimination's pairwise sums: ``closeness.cpp``). Such a loop is
kept here as a small C++ file without torch headers; :func:`library` compiles it once per machine
(a few seconds) into ``$GANTRICKS_CACHE/native`` (default ``~/.cache/gantricks/native``), the file
name a hash of the source, the compiler and its flags, and loads it. The compiler is ``$CXX``, else the
first of ``c++``, ``g++``, ``clang++`` on the path. Without one, or with ``GANTRICKS_NATIVE=0``, the
caller uses its torch formulation (the same function, slower); a compiler that fails says why, once, as
a warning. Each kernel works on CPU float32/float64 tensors and releases the GIL while it runs.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch

SOURCE_DIR = Path(__file__).resolve().parent
_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math")
_OPENMP = ("-fopenmp",)
_built: dict[str, ctypes.CDLL | None] = {}
_errors: dict[str, str] = {}
_lock = threading.Lock()


def enabled() -> bool:
    """False where ``GANTRICKS_NATIVE=0`` (or ``false``/``no``/``off``) asks for the torch formulations."""
    return os.environ.get("GANTRICKS_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def compiler() -> str | None:
    """The C++ compiler to build with: ``$CXX``, else ``c++``, ``g++`` or ``clang++`` from the path."""
    if os.environ.get("CXX"):
        return os.environ["CXX"]
    return next((path for name in ("c++", "g++", "clang++") if (path := shutil.which(name))), None)


def cache_dir() -> Path:
    """``$GANTRICKS_CACHE/native``, else ``~/.cache/gantricks/native``."""
    return Path(os.environ.get("GANTRICKS_CACHE") or Path.home() / ".cache" / "gantricks") / "native"


def library(name: str) -> ctypes.CDLL | None:
    """``name``.cpp of this folder, built (once per machine) and loaded; None where it cannot be: native
    kernels switched off, no compiler (both silently), or a build that failed (a warning, once)."""
    if not enabled():
        return None
    with _lock:
        if name not in _built:
            _built[name] = _build(name)
        return _built[name]


def build_error(name: str) -> str | None:
    """Why ``name`` could not be built: None where it was (or native kernels are off / no compiler)."""
    return _errors.get(name)


def _arch_flags() -> tuple[str, ...]:
    """AVX2 and FMA where torch found them on this CPU (the kernels use 32-byte vectors); the compiler's
    default elsewhere (it splits the vectors)."""
    return ("-mavx2", "-mfma") if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") else ()


def _build(name: str) -> ctypes.CDLL | None:
    cxx = compiler()
    if cxx is None:
        return None
    source = SOURCE_DIR / f"{name}.cpp"
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as err:
        return _failed(name, f"{cxx} --version: {err}")
    folder = _writable_cache()
    if folder is None:
        return _failed(name, "no writable folder for it (set GANTRICKS_CACHE)")
    builds = []                          # with OpenMP threads over the kernels where the compiler has it
    for extra in (_OPENMP, ()):
        flags = (*_FLAGS, *_arch_flags(), *extra)
        key = hashlib.sha256("\0".join((source.read_text(), cxx, version, *flags)).encode()).hexdigest()[:16]
        builds.append((flags, folder / f"{name}-{key}.so"))
    errors = []
    for flags, target in sorted(builds, key=lambda build: not build[1].exists()):   # one built before first
        if not target.exists():
            error = _compile(cxx, flags, source, target)
            if error:
                errors.append(error)
                continue
        try:
            return ctypes.CDLL(str(target))
        except OSError as err:
            errors.append(f"loading {target}: {err}")
    return _failed(name, errors[-1] if errors else "unknown error")


def _compile(cxx: str, flags: tuple[str, ...], source: Path, target: Path) -> str | None:
    """Compile to a temporary file beside ``target`` and move it in place (so concurrent builds, e.g. two
    benchmark workers, never load a half-written library); the compiler's complaint if it fails."""
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run([cxx, *flags, str(source), "-o", tmp], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            return f"{cxx} {' '.join(flags)}: {done.stderr.strip()[-2000:]}"
        os.replace(tmp, target)
        return None
    except (OSError, subprocess.SubprocessError) as err:
        return f"{cxx}: {err}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _writable_cache() -> Path | None:
    """The cache folder, else one in the temporary folder (a home without write access), else None."""
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    try:
        folders = [cache_dir()]
    except RuntimeError:                 # no home folder to be found
        folders = []
    for folder in (*folders, Path(tempfile.gettempdir()) / f"gantricks-native-{user}"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            continue
    return None


def _failed(name: str, why: str) -> None:
    _errors[name] = why
    warnings.warn(f"gantricks: the native {name} kernels could not be built; using the torch formulation "
                  f"(slower). {why}", stacklevel=3)
    return None
