"""Consistency regularization of D: bCR and zCR (Zhao et al. 2021, arXiv:2002.04724, Alg. 1-2; after CR,
Zhang et al. 2020, arXiv:1910.12027).

bCR (balanced consistency), D's loss gains

    λ_real · E‖D(x) - D(T(x))‖² + λ_fake · E‖D(G(z)) - D(T(G(z)))‖²

where T is a semantics-preserving augmentation (the paper: flip and a few pixels' translation; here
DiffAugment's translation, no flip: a mirrored digit is another symbol). Only D is trained on it; D's
adversarial loss stays on un-augmented inputs (unlike DiffAugment).

zCR (latent consistency), with z̃ = z + Δz, Δz ~ N(0, σ²):

    D:  λ_dis · E‖D(G(z)) - D(G(z̃))‖²          G:  -λ_gen · E‖G(z) - G(z̃)‖²

D is made insensitive to small latent moves, and G is pushed to make them visible (against collapse).
The squared norms are per sample over D's outputs / G's sample, averaged over the batch. zCR draws its
own z (a batch of the real batch's size), so it needs no access to the scheme's noise; both of its batches go
through the other tricks' D-input hooks (packing, augmentation) with the same random draws.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .base import StepContext, Trick
from .common import register_trick, require
from .diffaugment import diff_augment


def squared_distance(a: Tensor, b: Tensor) -> Tensor:
    """E_batch ‖a - b‖² with the norm over everything but the batch axis (``(B,)`` and ``(B, 1)`` alike)."""
    return (a.reshape(a.shape[0], -1) - b.reshape(b.shape[0], -1)).pow(2).sum(1).mean()


def bcr_terms(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, real_logits: Tensor, fake_logits: Tensor,
              transform: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """(E‖D(x) - D(T(x))‖², E‖D(G(z)) - D(T(G(z)))‖²) (Zhao et al. 2021, arXiv:2002.04724, Alg. 1), given
    D's outputs on the un-augmented batches; multiply by λ_real, λ_fake."""
    return (squared_distance(real_logits, D(transform(real)).float()),
            squared_distance(fake_logits, D(transform(fake)).float()))


def zcr_d_term(D: Callable[[Tensor], Tensor], x: Tensor, x_moved: Tensor) -> Tensor:
    """E‖D(G(z)) - D(G(z + Δz))‖² given ``x`` = G(z) and ``x_moved`` = G(z + Δz) (Zhao et al. 2021,
    arXiv:2002.04724, Alg. 2): zCR's D term; multiply by λ_dis."""
    return squared_distance(D(x).float(), D(x_moved).float())


def zcr_g_term(x: Tensor, x_moved: Tensor) -> Tensor:
    """E‖G(z) - G(z + Δz)‖² (Zhao et al. 2021, arXiv:2002.04724, Alg. 2): zCR's G term; multiply by -λ_gen."""
    return squared_distance(x, x_moved)


def translation(x: Tensor) -> Tensor:
    """bCR's T here: DiffAugment's integer translation of up to 1/8 of the size, per sample."""
    return diff_augment(x, ("translation",))


def same_d_inputs(gan, x: Tensor, x_moved: Tensor) -> tuple[Tensor, Tensor]:
    """``x`` and ``x_moved`` through the GAN's D-input hooks (packing, augmentation, noise) with the same random
    draws for both, so that D's outputs differ only by the latent move (as G's step hooks them: no replay)."""
    devices = [gan.device.index or 0] if gan.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):      # the second call draws what the first drew
        _, x_in = gan.d_inputs(None, x, "G")
    _, moved_in = gan.d_inputs(None, x_moved, "G")
    return x_in, moved_in


@register_trick("cr", paper="Zhao et al. 2021, arXiv:2002.04724, Alg. 1 (bCR); Zhang et al. 2020, arXiv:1910.12027",
                summary="D term lambda_real E||D(x)-D(T x)||^2 + lambda_fake E||D(G z)-D(T G z)||^2, T a translation")
class BalancedConsistency(Trick):
    """bCR with weights ``real`` (λ_real) and ``fake`` (λ_fake), 10 each as in the paper."""

    needs_images = True

    def __init__(self, real: float = 10.0, fake: float = 10.0):
        require(real >= 0 and fake >= 0, f"trick 'cr': real and fake weights must be >= 0, got {real}, {fake}")
        self.real, self.fake = float(real), float(fake)

    def d_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        real_term, fake_term = bcr_terms(ctx.D, ctx.real_in, ctx.fake_in.detach(), ctx.real_logits,
                                         ctx.fake_logits, translation)
        return {"cr_real": self.real * real_term, "cr_fake": self.fake * fake_term}


@register_trick("zcr", paper="Zhao et al. 2021, arXiv:2002.04724, Alg. 2 (zCR)",
                summary="D term lambda_dis E||D(G z)-D(G(z+dz))||^2, G term -lambda_gen E||G z-G(z+dz)||^2")
class LatentConsistency(Trick):
    """zCR with ``sigma`` (0.03), ``dis`` (λ_dis, 5) and ``gen`` (λ_gen, 0.5), the paper's values."""

    def __init__(self, sigma: float = 0.03, dis: float = 5.0, gen: float = 0.5):
        require(sigma > 0, f"trick 'zcr': sigma must be > 0, got {sigma}")
        require(dis >= 0 and gen >= 0, f"trick 'zcr': dis and gen must be >= 0, got {dis}, {gen}")
        self.sigma, self.dis, self.gen = float(sigma), float(dis), float(gen)

    def validate(self, gan) -> None:
        super().validate(gan)
        require(getattr(gan.scheme, "takes_noise", True), f"trick 'zcr' moves G's noise; scheme "
                f"{gan.scheme.name!r}'s G takes no noise")

    def _noise(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        z = ctx.gan.noise(ctx.fake.shape[0])
        return z, self.sigma * torch.randn_like(z)

    def d_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        z, dz = self._noise(ctx)
        with torch.no_grad():
            x, x_moved = ctx.gan.G(z), ctx.gan.G(z + dz)
            x, x_moved = same_d_inputs(ctx.gan, x, x_moved)
        return {"zcr_d": self.dis * zcr_d_term(ctx.D, x, x_moved)}

    def g_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        z, dz = self._noise(ctx)
        x, x_moved = ctx.gan.G(z), ctx.gan.G(z + dz)
        return {"zcr_g": -self.gen * zcr_g_term(x, x_moved)}
