"""Minibatch discrimination's pairwise sums in native code (``closeness.cpp``), on CPU tensors.

For projections ``M`` ``(N, B, C)`` and K_ij = exp(-Σ_c |M_ibc - M_jbc|) per kernel b (its exponent
floored at -64, as :mod:`gantricks.tricks.minibatch_discrimination`'s torch formulation):
:func:`forward` is o = Σ_{j≠i} K_ij (+1 with ``include_self``), :func:`backward` the gradient of Σ g·o
with respect to M, and :func:`double_backward` that gradient's own vector-Jacobian product. Each pair
of samples is visited once per kernel. The forward can keep K (``(B, N, padded N)``, the size of the
torch formulation's saved kernel matrix) for the backward passes, which then skip the distances and
the exponentials (about half their work); without it they recompute K.
"""
from __future__ import annotations

import ctypes
import functools
import threading

import torch
from torch import Tensor

from . import enabled, library

DTYPES = {torch.float32: "f32", torch.float64: "f64"}


@functools.lru_cache(maxsize=1)
def _functions() -> dict | None:
    lib = library("closeness")
    if lib is None:
        return None
    pointer, size, flag = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    signatures = {"forward": (pointer, pointer, pointer, size, size, size, flag, flag),
                  "backward": (pointer, pointer, pointer, pointer, size, size, size, flag),
                  "double_backward": (pointer,) * 6 + (size, size, size, flag)}
    functions = {}
    for name, argtypes in signatures.items():
        for suffix in DTYPES.values():
            function = getattr(lib, f"closeness_{name}_{suffix}")
            function.argtypes, function.restype = argtypes, ctypes.c_int
            functions[f"{name}_{suffix}"] = function
    lib.closeness_max_dims.restype = ctypes.c_int
    lib.closeness_padded_size.argtypes, lib.closeness_padded_size.restype = (size, size), size
    functions["max_dims"] = lib.closeness_max_dims()
    functions["padded_size"] = lib.closeness_padded_size
    return functions


def available_for(M: Tensor) -> bool:
    """Whether the native kernels take ``M`` ``(N, B, C)``: a CPU float32/float64 tensor, C within the
    compiled limit (64), native kernels on and built (:func:`gantricks.native.library`)."""
    if M.device.type != "cpu" or M.dtype not in DTYPES or M.dim() != 3 or not enabled():
        return False
    functions = _functions()
    return functions is not None and 1 <= M.shape[2] <= functions["max_dims"]


def kernel_shape(M: Tensor) -> tuple[int, int, int]:
    """The shape of the K that :func:`forward` keeps for ``M`` ``(N, B, C)``: (B, N, N padded to the vector width)."""
    N, B, _ = M.shape
    return B, N, int(_functions()["padded_size"](N, M.element_size()))


class _KernelPool:
    """K buffers kept between calls for reuse (:func:`release` gives one back): a fresh 4 MB tensor per call
    costs the CPU its page faults again, measured ~1.5 ms per call for batch 100 (more than the forward
    itself). At most ``max_bytes`` are kept, of the last shape asked for."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.free, self.lock = max_bytes, [], threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        with self.lock:
            for n, t in enumerate(self.free):
                if t.shape == shape and t.dtype == dtype:
                    return self.free.pop(n)
            self.free = []                   # another shape now: the buffers of the old one go
        return torch.empty(shape, dtype=dtype)

    def give(self, t: Tensor) -> None:
        with self.lock:
            if sum(f.nbytes for f in self.free) + t.nbytes <= self.max_bytes:
                self.free.append(t)


_pool = _KernelPool(128 * 2**20)        # a D step holds two K at once, the G step one


def release(K: Tensor | None) -> None:
    """Hand back a K that :func:`forward` returned and nothing uses any more, for the next forward to reuse."""
    if K is not None:
        _pool.give(K)


def forward(M: Tensor, include_self: bool, keep_kernel: bool = False) -> tuple[Tensor, Tensor | None]:
    """o ``(N, B)``, and K for the backward passes if ``keep_kernel`` (give it back with :func:`release`)."""
    M = M.contiguous()
    N, B, C = M.shape
    o = torch.empty(N, B, dtype=M.dtype)
    K = _pool.take(kernel_shape(M), M.dtype) if keep_kernel else None
    _call("forward", M, M.data_ptr(), o.data_ptr(), _pointer(K), N, B, C, int(include_self), torch.get_num_threads())
    return o, K


def backward(M: Tensor, grad: Tensor, K: Tensor | None = None) -> Tensor:
    """∂(Σ grad·o)/∂M ``(N, B, C)`` for the gradient ``grad`` ``(N, B)`` of o (``K``: the forward's, or None)."""
    M, grad = M.contiguous(), grad.to(M.dtype).contiguous()
    N, B, C = M.shape
    out = torch.empty_like(M)
    _check_kernel(M, K)
    _call("backward", M, M.data_ptr(), grad.data_ptr(), _pointer(K), out.data_ptr(), N, B, C, torch.get_num_threads())
    return out


def double_backward(M: Tensor, grad: Tensor, H: Tensor, K: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """For F = :func:`backward` (M, grad) and an upstream ``H`` ``(N, B, C)``: ∂(Σ H·F)/∂M and
    ∂(Σ H·F)/∂grad."""
    M, grad, H = M.contiguous(), grad.to(M.dtype).contiguous(), H.to(M.dtype).contiguous()
    N, B, C = M.shape
    d_M, d_grad = torch.empty_like(M), torch.empty_like(grad)
    _check_kernel(M, K)
    _call("double_backward", M, M.data_ptr(), grad.data_ptr(), H.data_ptr(), _pointer(K), d_M.data_ptr(),
          d_grad.data_ptr(), N, B, C, torch.get_num_threads())
    return d_M, d_grad


def _pointer(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _check_kernel(M: Tensor, K: Tensor | None) -> None:
    if K is not None and (tuple(K.shape) != kernel_shape(M) or K.dtype != M.dtype or not K.is_contiguous()
                          or K.data_ptr() % 32):      # its rows are read as aligned 32-byte vectors
        raise ValueError(f"native closeness kernels: K of shape {tuple(K.shape)} ({K.dtype}) does not belong to M "
                         f"of shape {tuple(M.shape)} ({M.dtype})")


def _call(name: str, M: Tensor, *args) -> None:
    if not _functions()[f"{name}_{DTYPES[M.dtype]}"](*args):
        raise ValueError(f"native closeness kernels: kernel_dim {M.shape[2]} is not supported")
