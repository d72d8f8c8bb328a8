"""An exponential moving average of G's weights for sampling (Karras et al. 2018, arXiv:1710.10196,
§A.1; Yazıcı et al. 2019, arXiv:1806.04498).

    θ_EMA ← β θ_EMA + (1 - β) θ_G   after every G step, β = ``decay`` (0.999);

buffers (batch-norm statistics) are copied, not averaged. The copy is
``gan.sampling_generator``: ``gan.sample`` and evaluation use it, training does
not. For the first ``warmup`` steps the copy follows G exactly, so early,
untrained weights do not linger in the average (Yazıcı et al. start averaging
late for the same reason). The averaged weights are part of the checkpoint.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .base import AFTER_STEP, Trick
from .common import register_trick, require


@torch.no_grad()
def ema_update(average: nn.Module, model: nn.Module, decay: float) -> None:
    """average ← decay·average + (1 - decay)·model for parameters; buffers copied (Karras et al. 2018,
    arXiv:1710.10196, §A.1; Yazıcı et al. 2019, arXiv:1806.04498)."""
    params = dict(model.named_parameters())
    for name, p in average.named_parameters():
        p.lerp_(params[name].detach(), 1.0 - decay)
    buffers = dict(model.named_buffers())
    for name, b in average.named_buffers():
        b.copy_(buffers[name])


@register_trick("ema", paper="Karras et al. 2018, arXiv:1710.10196; Yazıcı et al. 2019, arXiv:1806.04498",
                summary="sample from an exponential moving average of G's weights (decay 0.999)")
class EMA(Trick):
    """EMA copy of G, exposed as ``sampling_generator``."""

    touches = (AFTER_STEP,)

    def __init__(self, decay: float = 0.999, warmup: int = 0):
        require(0 <= decay < 1, f"trick 'ema': decay must be in [0, 1), got {decay}")
        require(warmup >= 0, f"trick 'ema': warmup must be >= 0, got {warmup}")
        self.decay, self.warmup = float(decay), int(warmup)
        self._gan = None
        self._average: nn.Module | None = None

    def setup(self, gan) -> None:
        self._gan = gan

    @property
    def sampling_generator(self) -> nn.Module:
        # copied on first use, after every trick's setup, so it has G's final structure
        # (e.g. spectral-norm:generator=true, whichever order the tricks were given in)
        if self._average is None:
            self._average = copy.deepcopy(self._gan.G).requires_grad_(False).eval()
        return self._average

    def after_step(self, gan) -> None:
        ema_update(self.sampling_generator, gan.G, 0.0 if gan.step_count <= self.warmup else self.decay)

    def state_dict(self) -> dict:
        return {"average": self.sampling_generator.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if "average" in state:
            self.sampling_generator.load_state_dict(state["average"])
