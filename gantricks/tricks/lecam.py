"""The LeCam regularizer (Tseng et al. 2021, arXiv:2104.03310, Eq. 3).

    R_LC = E_x[‖D(x) - α_F‖²] + E_z[‖D(G(z)) - α_R‖²]

α_R and α_F are exponential moving averages (decay 0.99) of D's mean output on real and on fake
batches: D's real outputs are pulled toward where its fake outputs have been and the other way round,
which keeps D's predictions from drifting apart on a small training set (the paper bounds it by a
LeCam divergence). As the authors' code (google/lecam-gan, ``lecam_loss.py``) the averages start at 0
and are zero-debiased (α_t = EMA_t / (1 - 0.99^t)), updated with each D step's outputs before the
term is taken. ``hinge=true`` is the authors' PyTorch form, ReLU(D(x) - α_F)² + ReLU(α_R - D(G(z)))²,
which leaves outputs already on the right side alone. The averages are part of the checkpoint.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import StepContext, Trick
from .common import register_trick, require


def lecam_penalty(real_logits: Tensor, fake_logits: Tensor, anchor_real: Tensor, anchor_fake: Tensor,
                  hinge: bool = False) -> Tensor:
    """E‖D(x) - α_F‖² + E‖D(G(z)) - α_R‖² (Tseng et al. 2021, arXiv:2104.03310, Eq. 3); with ``hinge`` only the
    parts beyond the anchors (ReLU(D(x) - α_F)², ReLU(α_R - D(G(z)))²). Multiply by the weight λ."""
    real_gap, fake_gap = real_logits - anchor_fake, anchor_real - fake_logits
    if hinge:
        real_gap, fake_gap = torch.relu(real_gap), torch.relu(fake_gap)
    return real_gap.pow(2).mean() + fake_gap.pow(2).mean()


def debiased_ema(biased: Tensor, value: Tensor, decay: float, count: int) -> tuple[Tensor, Tensor]:
    """(the new biased EMA, its zero-debiased value) after the ``count``-th update with ``value``:
    m ← decay·m + (1 - decay)·value, α = m / (1 - decay^count) (as ``assign_moving_average(zero_debias=True)``)."""
    biased = decay * biased + (1 - decay) * value
    return biased, biased / (1 - decay ** count)


@register_trick("lecam", paper="Tseng et al. 2021, arXiv:2104.03310, Eq. 3 (LeCam regularization)",
                summary="D term weight * (E||D(x)-alpha_F||^2 + E||D(G z)-alpha_R||^2), anchors EMAs of D's outputs")
class LeCam(Trick):
    """LeCam with ``weight`` λ (0.3, the paper's CIFAR setting for BigGAN) and EMA ``decay`` (0.99)."""

    def __init__(self, weight: float = 0.3, decay: float = 0.99, hinge: bool = False):
        require(weight >= 0, f"trick 'lecam': weight must be >= 0, got {weight}")
        require(0 <= decay < 1, f"trick 'lecam': decay must be in [0, 1), got {decay}")
        self.weight, self.decay, self.hinge = float(weight), float(decay), bool(hinge)
        self.ema_real, self.ema_fake = torch.zeros(()), torch.zeros(())   # biased EMAs (from 0)
        self.updates = 0

    def anchors(self) -> tuple[Tensor, Tensor]:
        """(α_R, α_F): the debiased averages of D's mean real and fake outputs (0 before any update)."""
        if self.updates == 0:
            return self.ema_real, self.ema_fake
        scale = 1 - self.decay ** self.updates
        return self.ema_real / scale, self.ema_fake / scale

    def d_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        real, fake = ctx.real_logits.float(), ctx.fake_logits.float()
        self.updates += 1
        self.ema_real, anchor_real = debiased_ema(self.ema_real.to(real.device), real.detach().mean(), self.decay,
                                                  self.updates)
        self.ema_fake, anchor_fake = debiased_ema(self.ema_fake.to(fake.device), fake.detach().mean(), self.decay,
                                                  self.updates)
        ctx.logs["lecam_anchor_real"], ctx.logs["lecam_anchor_fake"] = anchor_real, anchor_fake
        return {"lecam": self.weight * lecam_penalty(real, fake, anchor_real, anchor_fake, self.hinge)}

    def state_dict(self) -> dict:
        return {"ema_real": self.ema_real.clone(), "ema_fake": self.ema_fake.clone(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        if "ema_real" in state:
            self.ema_real, self.ema_fake = state["ema_real"].clone(), state["ema_fake"].clone()
            self.updates = int(state["updates"])
