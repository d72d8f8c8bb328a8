"""Paths through the noise space, the quick check of memorisation: a G that has learnt the data moves
smoothly from one sample to another, one that has memorised jumps between training examples.

* ``lerp``: the straight line ``(1 - t)·a + t·b``;
* ``slerp``: the great-circle arc (Shoemake 1985; for GANs White 2016, arXiv:1609.04468, §2.1, and
  ganhacks): ``sin((1-t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b`` with Ω the angle between ``a`` and ``b``.
  Gaussian noise lives near a sphere; the straight line between two draws passes through its inside,
  where G saw almost no noise in training, while the arc stays at the draws' radius.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .errors import ConfigError

METHODS = ("slerp", "lerp")


def lerp(a: Tensor, b: Tensor, t: "Tensor | float") -> Tensor:
    """``(1 - t)·a + t·b`` per row: ``a``, ``b`` ``(B, ...)``, ``t`` a number or ``(B,)`` (the straight path
    White 2016, arXiv:1609.04468, compares slerp with)."""
    t = _per_row(torch.as_tensor(t, dtype=a.dtype, device=a.device), a)
    return (1 - t) * a + t * b


def slerp(a: Tensor, b: Tensor, t: "Tensor | float", eps: float = 1e-7) -> Tensor:
    """Spherical interpolation per row (White 2016, arXiv:1609.04468): ``sin((1-t)Ω)/sin Ω·a + sin(tΩ)/sin Ω·b``,
    Ω = arccos(⟨a, b⟩ / (‖a‖‖b‖)) over each row's flattened entries; :func:`lerp` where Ω is ~0."""
    fa, fb = a.flatten(1), b.flatten(1)
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(eps)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device).expand(len(a))
    near = sin.abs() < eps
    safe = torch.where(near, torch.ones_like(sin), sin)
    wa = torch.where(near, 1 - t, torch.sin((1 - t) * omega) / safe)
    wb = torch.where(near, t, torch.sin(t * omega) / safe)
    return _per_row(wa, a) * a + _per_row(wb, a) * b


def interpolation_path(a: Tensor, b: Tensor, steps: int, method: str = "slerp") -> Tensor:
    """``(B, steps, ...)``: ``steps`` points from ``a`` to ``b`` (both ends included), by ``method``
    (White 2016, arXiv:1609.04468)."""
    if method not in METHODS:
        raise ConfigError(f"interpolate must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"interpolation steps must be an integer >= 2, got {steps!r}")
    fn = slerp if method == "slerp" else lerp
    return torch.stack([fn(a, b, float(t)) for t in torch.linspace(0, 1, steps).tolist()], 1)


def _per_row(t: Tensor, like: Tensor) -> Tensor:
    return t.reshape(-1, *([1] * (like.dim() - 1))) if t.dim() else t
