"""Optimizers by name: ``adam`` (the default), ``adamw``, ``sgd``, ``rmsprop``, with their options.

A spec is ``NAME[:key=value,...]`` as everywhere (``sgd:lr=0.01,momentum=0.9``), or, in Python,
a callable that takes the parameters and returns a ``torch.optim.Optimizer``. The learning rate
is the spec's ``lr`` if it sets one, else the GAN's ``lr_g`` / ``lr_d``; Adam's and AdamW's betas
are the GAN's ``betas`` (the config's ``beta1``, ``beta2``) unless the spec sets them.

>>> make_optimizer("sgd:momentum=0.9", D.parameters(), lr=1e-3, betas=(0.5, 0.999))
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Union

import torch
from torch import Tensor

from .errors import ConfigError
from .registry import Spec, coerce_options, optimizers

OptimizerSpec = Union[str, Spec, dict, Callable[[Iterable[Tensor]], torch.optim.Optimizer]]


@optimizers.register("adam", paper="Kingma & Ba 2015, arXiv:1412.6980", summary="Adam, the default (lr None: lr_g / lr_d; betas None: beta1, beta2)")
def adam(params, /, lr: float | None = None, betas: tuple[float, float] | None = None, eps: float = 1e-8,
         weight_decay: float = 0.0, amsgrad: bool = False, fused: bool | None = None) -> torch.optim.Optimizer:
    """Adam; ``lr`` and ``betas`` (None): the GAN's ``lr_g`` / ``lr_d`` and ``beta1``, ``beta2``.
    ``fused`` (None): torch's fused kernel where the parameters allow it (see :func:`fused_kernel`)."""
    params, fused = fused_kernel(params, fused, "adam")
    return torch.optim.Adam(params, lr=_given(lr), betas=betas if betas is not None else (0.9, 0.999), eps=eps,
                            weight_decay=weight_decay, amsgrad=amsgrad, fused=fused)


@optimizers.register("adamw", paper="Loshchilov & Hutter 2019, arXiv:1711.05101",
                     summary="Adam with decoupled weight decay (lr, betas as adam)")
def adamw(params, /, lr: float | None = None, betas: tuple[float, float] | None = None, eps: float = 1e-8,
          weight_decay: float = 0.01, amsgrad: bool = False, fused: bool | None = None) -> torch.optim.Optimizer:
    params, fused = fused_kernel(params, fused, "adamw")
    return torch.optim.AdamW(params, lr=_given(lr), betas=betas if betas is not None else (0.9, 0.999), eps=eps,
                             weight_decay=weight_decay, amsgrad=amsgrad, fused=fused)


@optimizers.register("sgd", paper="Robbins & Monro 1951; Nesterov 1983 (nesterov)",
                     summary="stochastic gradient descent, optional (Nesterov) momentum (lr None: lr_g / lr_d)")
def sgd(params, /, lr: float | None = None, momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
        nesterov: bool = False) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=_given(lr), momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                           nesterov=nesterov)


@optimizers.register("rmsprop", paper="Tieleman & Hinton 2012, Coursera NN lecture 6.5 (WGAN's optimizer)",
                     summary="RMSprop (lr None: lr_g / lr_d)")
def rmsprop(params, /, lr: float | None = None, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
            momentum: float = 0.0, centered: bool = False) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=_given(lr), alpha=alpha, eps=eps, weight_decay=weight_decay,
                               momentum=momentum, centered=centered)


FUSED_DEVICES = ("cpu", "cuda")


def fused_kernel(params: Iterable[Tensor], fused: bool | None, name: str) -> tuple[list, bool | None]:
    """The parameters as a list, and whether to ask torch for its fused update: one kernel per
    parameter instead of a handful of ops each. On small nets that is most of an optimizer step's cost
    (Adam on 3x64 MLPs: a step of G and D 16 % faster on a CPU thread); the arithmetic is Adam's,
    rounded differently in the last bits. ``None`` (the default): fused where torch has the kernel for
    every parameter (floating point, on a CPU or CUDA device), else torch's own choice; ``False``:
    torch's own choice (a loop over tensors on a CPU, ``foreach`` on CUDA); ``True``: fused, or an error."""
    params = list(params)
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    can = bool(tensors) and all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in tensors)
    if fused and not can:
        raise ConfigError(f"optimizer {name!r}: fused=true needs floating-point parameters on "
                          f"{' or '.join(FUSED_DEVICES)}; use fused=false")
    return params, (can if fused is None else fused) or None


def _given(lr: float | None) -> float:
    if lr is None:     # the GAN passes its lr_g / lr_d; only a direct call can leave it out
        raise ConfigError("an optimizer needs a learning rate: give lr")
    return lr


def check_optimizer_spec(spec: OptimizerSpec, what: str = "optimizer") -> None:
    """:class:`ConfigError` for an unknown name or option, checked without building anything."""
    if callable(spec) and not isinstance(spec, (str, Spec, dict)):
        return
    parsed = Spec.parse(spec)
    entry = optimizers.get(parsed.name)
    kwargs = coerce_options(f"{what} {parsed.name!r}", entry.options(), parsed.options)
    _check_values(what, parsed.name, kwargs)


def make_optimizer(spec: OptimizerSpec, params: Iterable[Tensor], lr: float, betas: tuple[float, float],
                   what: str = "optimizer") -> torch.optim.Optimizer:
    """The optimizer ``spec`` names over ``params``; ``lr`` and ``betas`` unless the spec sets its own."""
    if callable(spec) and not isinstance(spec, (str, Spec, dict)):
        try:
            opt = spec(params)
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{what}: the callable failed on the parameters: {err}") from None
        if not isinstance(opt, torch.optim.Optimizer):
            raise ConfigError(f"{what}: a callable must return a torch.optim.Optimizer, got {type(opt).__name__}")
        return opt
    check_optimizer_spec(spec, what)
    return optimizers.build(spec, params, lr=lr, betas=tuple(betas))


def _check_values(what: str, name: str, kwargs: dict[str, Any]) -> None:
    if kwargs.get("lr") is not None and not (kwargs["lr"] > 0 and math.isfinite(kwargs["lr"])):
        raise ConfigError(f"{what} {name!r}: lr must be a positive number, got {kwargs['lr']}")
    for key in ("eps", "weight_decay", "momentum", "dampening"):
        if key in kwargs and not (kwargs[key] >= 0 and math.isfinite(kwargs[key])):
            raise ConfigError(f"{what} {name!r}: {key} must be >= 0, got {kwargs[key]}")
    if "alpha" in kwargs and not 0 <= kwargs["alpha"] < 1:
        raise ConfigError(f"{what} {name!r}: alpha must be in [0, 1), got {kwargs['alpha']}")
    if kwargs.get("betas") is not None and not all(0 <= b < 1 for b in kwargs["betas"]):
        raise ConfigError(f"{what} {name!r}: betas must be in [0, 1), got {kwargs['betas']}")
