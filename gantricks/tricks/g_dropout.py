"""Dropout in G as noise, at training and at sampling time (Isola et al. 2017, arXiv:1611.07004, §3.1:
pix2pix's G takes its noise "only in the form of dropout, applied on several layers of our generator at
both training and test time"; ganhacks #17).

The trick puts ``nn.Dropout(p)`` after each hidden activation of G (ReLU, leaky ReLU, ELU, GELU, SiLU;
not the output's tanh), and with ``sampling`` (default) keeps it on when G samples. Any G with dropout
layers can also sample with them on: ``gan.sample(n, dropout=True)``, ``gantricks sample --dropout``.
"""
from __future__ import annotations

from torch import nn

from .base import G_ARCH, Trick
from .common import register_trick, require
from .virtual_batch_norm import ACTIVATIONS, _set


def insert_dropout(G: nn.Module, p: float) -> int:
    """Put ``nn.Dropout(p)`` after every hidden activation of ``G`` (in place); returns how many (noise as
    dropout: Isola et al. 2017, arXiv:1611.07004, §3.1; ganhacks #17)."""
    acts = [(n, m) for n, m in G.named_modules() if isinstance(m, ACTIVATIONS)]
    for name, m in acts:
        _set(G, name, nn.Sequential(m, nn.Dropout(p)))
    return len(acts)


@register_trick("g-dropout", paper="Isola et al. 2017, arXiv:1611.07004, §3.1; ganhacks #17",
                summary="dropout(p) after G's hidden activations, on at sampling time too (noise as dropout)")
class GeneratorDropout(Trick):
    """Dropout with rate ``p`` (0.5) in G; ``sampling``: kept on when sampling."""

    touches = (G_ARCH,)

    def __init__(self, p: float = 0.5, sampling: bool = True):
        require(0 < p < 1, f"trick 'g-dropout': p must be in (0, 1), got {p}")
        self.p, self.sample_with_dropout = float(p), bool(sampling)

    def setup(self, gan) -> None:
        require(insert_dropout(gan.modules["G"], self.p) > 0,
                "trick 'g-dropout': G has no hidden activation (ReLU, leaky ReLU, ELU, GELU, SiLU) to follow")
