"""What the gradient penalties share: D's input gradient, its per-sample norm, lazy application.

The norm is taken per sample over **all** non-batch dimensions. Two bugs seen in
public code (PROTOCOLS.md) are avoided: one norm over the whole batch, and the
norm over dim=1 only of a 4-D (B, C, H, W) gradient.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .base import D_LOSS, StepContext, Trick
from .common import require


def input_gradient(D: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """∇_x of D's outputs summed per sample, with a graph so a penalty on it trains D.

    Outputs of any shape (B, ...) are summed per sample; for a D without
    cross-sample layers summing over the batch gives each sample its own gradient.
    An ``x`` that already carries a graph (fakes inside an unrolled D step) keeps it,
    so the penalty's dependence on G is part of G's exact gradient.
    """
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    if not _autocast_on(x.device.type):
        (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        return grad
    # under bf16 autocast this D pass and its backward (recorded with create_graph, so autocast
    # would apply to it too) run in fp32: a norm penalty on the gradient of bf16 logits
    # (8 bits of mantissa) would train D on rounding noise
    with torch.autocast(x.device.type, enabled=False):
        (grad,) = torch.autograd.grad(D(x.float()).float().sum(), x, create_graph=True)
    return grad


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:   # torch < 2.4 takes no device type
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


def per_sample_norm(grad: Tensor) -> Tensor:
    """The L2 norm of each sample's gradient over all non-batch dimensions, shape (B,)."""
    return torch.linalg.vector_norm(grad.flatten(1), dim=1)


class GradientPenalty(Trick):
    """A penalty term on D's loss, applied every ``every``-th D loss and then scaled by ``every``
    (lazy regularization, Karras et al. 2020, arXiv:1912.04958, §B), so its average weight is
    unchanged. Logs the mean input-gradient norm it measured as ``<name>_grad_norm``."""

    touches = (D_LOSS,)

    def __init__(self, every: int):
        require(every >= 1, f"trick {self.name!r}: every must be >= 1, got {every}")
        self.every = int(every)
        self._calls = 0                      # D losses seen: decides which ones are penalised
        self._last_norm: Tensor | None = None

    def penalty(self, ctx: StepContext) -> tuple[Tensor, Tensor]:  # pragma: no cover - interface
        """(the weighted penalty, the per-sample gradient norms)."""
        raise NotImplementedError

    def d_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        if ctx.phase != "D":
            return {}
        key = self.name.replace("-", "_")
        due = self._calls % self.every == 0
        self._calls += 1
        if due:
            value, norms = self.penalty(ctx)
            self._last_norm = norms.detach().mean()
        if self._last_norm is not None:
            ctx.logs[f"{key}_grad_norm"] = self._last_norm
        return {f"d_{key}": self.every * value} if due else {}

    def state_dict(self) -> dict:
        return {"calls": self._calls}

    def load_state_dict(self, state: dict) -> None:
        self._calls = int(state.get("calls", 0))


def check_weight(name: str, value: float, what: str = "weight") -> float:
    require(value >= 0, f"trick {name!r}: {what} must be >= 0, got {value}")
    return float(value)
