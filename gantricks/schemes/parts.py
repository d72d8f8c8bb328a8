"""Pieces the multi-network schemes share (EBGAN, MAD-GAN, MRGAN/MDGAN): config checks and fresh copies."""
from __future__ import annotations

import contextlib
import copy
from typing import TYPE_CHECKING, Iterable, Iterator

import torch
from torch import nn

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..gan import GAN


def refuse_tricks(gan: "GAN", scheme: str, touches: Iterable[str], why: str) -> None:
    """:class:`ConfigError` for the first trick that touches one of ``touches`` (their hooks assume
    something the scheme does not have, e.g. binary logits)."""
    banned = set(touches)
    for trick in gan.tricks:
        hit = sorted(banned & set(trick.touches))
        if hit:
            raise ConfigError(f"scheme {scheme!r} cannot use trick {trick.name!r} (it changes the {hit[0]}): {why}")


def require_loss(gan: "GAN", scheme: str, allowed: Iterable[str], why: str) -> None:
    allowed = tuple(allowed)
    if gan.loss.name not in allowed:
        raise ConfigError(f"scheme {scheme!r} {why}; set loss to {' or '.join(allowed)}, not {gan.loss.name!r}")


def reinitialized_copy(module: nn.Module, what: str) -> nn.Module:
    """A deep copy of ``module`` with every sub-module's ``reset_parameters`` called: same architecture,
    independent initial weights (two identical copies would receive identical gradients forever)."""
    twin = copy.deepcopy(module)
    for m in twin.modules():
        if callable(getattr(m, "reset_parameters", None)):
            m.reset_parameters()
    same = [torch.equal(a, b) for a, b in zip(module.parameters(), twin.parameters())]
    if same and all(same):
        raise ConfigError(f"could not re-initialize a copy of {what}: none of its modules has reset_parameters()")
    return twin


@contextlib.contextmanager
def running_stats_kept(module: nn.Module) -> Iterator[None]:
    """Forward passes inside leave the running statistics of ``module``'s norm layers as they were.

    Batch norm still normalises with the batch's own statistics. For G's passes on other
    inputs than noise (MRGAN's G(E(x))): the running statistics must describe G(z) batches,
    which is what they normalise when G samples in eval mode.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]
    kept = [dict(m.named_buffers(recurse=False)) for m in norms]
    for m, buffers in zip(norms, kept):     # the passes update copies (autograd may hold them), then the
        for n, b in buffers.items():        # original tensors go back in place
            setattr(m, n, b.clone())
    try:
        yield
    finally:
        for m, buffers in zip(norms, kept):
            for n, b in buffers.items():
                setattr(m, n, b)
