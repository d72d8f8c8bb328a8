"""Differentiable Augmentation, DiffAugment (Zhao et al. 2020, arXiv:2006.10738, §3, Eq. 2-3).

The same random, differentiable transforms T are applied to every input of D, real and fake, in D's
update and in G's (G's gradient flows through T):

    L_D = f(D(T(x))) + h(D(T(G(z)))),        L_G = g(D(T(G(z))))

so D never sees an un-augmented image and cannot memorise the few training images, while G is not
pushed to make augmented-looking images (T is applied to both sides alike). The policies and their
ranges are those of the authors' ``DiffAugment_pytorch.py`` (mit-han-lab/data-efficient-gans), each
draw per sample:

==============  ======================================================================================
``color``       brightness x + (r - 0.5); saturation (x - x̄_c)·2r + x̄_c (mean over channels; a no-op on
                one channel); contrast (x - x̄)·(r + 0.5) + x̄ (mean over the image); r ~ U[0, 1) each
``translation`` an integer shift of up to ⌊size/8⌋ pixels along each axis, uncovered pixels set to 0
``cutout``      a ⌊size/2⌋ square (clipped at the border) set to 0, its centre uniform over the image
==============  ======================================================================================

The pure functions take their random draws as arguments (:func:`draw_diffaugment` makes them), so a
test can give real and fake the same draws; the trick draws them afresh for every batch.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
import torch.nn.functional as F

from ..errors import ConfigError
from .base import Trick
from .common import register_trick, require

POLICIES = ("color", "translation", "cutout")


def brightness(x: Tensor, r: Tensor) -> Tensor:
    """x + (r - 0.5), r ~ U[0, 1) per sample ``(B,)`` (Zhao et al. 2020, DiffAugment ``rand_brightness``)."""
    return x + (r - 0.5).view(-1, *[1] * (x.dim() - 1)).to(x)


def saturation(x: Tensor, r: Tensor) -> Tensor:
    """(x - mean over channels)·2r + that mean (DiffAugment ``rand_color``)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (2 * r).view(-1, *[1] * (x.dim() - 1)).to(x) + mean


def contrast(x: Tensor, r: Tensor) -> Tensor:
    """(x - mean over the sample)·(r + 0.5) + that mean (DiffAugment ``rand_contrast``)."""
    mean = x.mean(dim=tuple(range(1, x.dim())), keepdim=True)
    return (x - mean) * (r + 0.5).view(-1, *[1] * (x.dim() - 1)).to(x) + mean


def translate(x: Tensor, shift_h: Tensor, shift_w: Tensor, padding: str = "zeros") -> Tensor:
    """``out[b, :, i, j] = x[b, :, i + shift_h[b], j + shift_w[b]]`` for integer shifts ``(B,)``; pixels from
    outside the image are 0 (``padding="zeros"``, DiffAugment ``rand_translation``) or mirrored
    (``"reflect"``, as ADA pads). Differentiable in ``x``."""
    _, _, h, w = x.shape
    shift_h, shift_w = shift_h.long().to(x.device), shift_w.long().to(x.device)
    if padding == "zeros":
        pad_h = pad_w = 1            # one zero border; indices beyond it are clamped onto it
        padded = F.pad(x, (1, 1, 1, 1))
        rows = (torch.arange(h, device=x.device) + shift_h[:, None] + 1).clamp(0, h + 1)
        cols = (torch.arange(w, device=x.device) + shift_w[:, None] + 1).clamp(0, w + 1)
    else:
        pad_h = min(h - 1, int(shift_h.abs().max()) if len(shift_h) else 0)
        pad_w = min(w - 1, int(shift_w.abs().max()) if len(shift_w) else 0)
        padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect") if pad_h or pad_w else x
        rows = (torch.arange(h, device=x.device) + shift_h[:, None] + pad_h).clamp(0, h + 2 * pad_h - 1)
        cols = (torch.arange(w, device=x.device) + shift_w[:, None] + pad_w).clamp(0, w + 2 * pad_w - 1)
    b, c = x.shape[:2]
    index_rows = rows[:, None, :, None].expand(b, c, h, padded.shape[3])
    out = padded.gather(2, index_rows)
    index_cols = cols[:, None, None, :].expand(b, c, h, w)
    return out.gather(3, index_cols)


def cutout_mask(shape: Sequence[int], centre_h: Tensor, centre_w: Tensor, ratio: float = 0.5,
                device=None, dtype=None) -> Tensor:
    """A ``(B, 1, H, W)`` mask of ones with a ⌊H·ratio⌋ x ⌊W·ratio⌋ square of zeros per sample, starting at
    ``centre - size // 2`` and clipped at the border (DiffAugment ``rand_cutout``)."""
    b, _, h, w = shape
    size_h, size_w = int(h * ratio), int(w * ratio)
    top = centre_h.long().to(device)[:, None] - size_h // 2
    left = centre_w.long().to(device)[:, None] - size_w // 2
    rows = torch.arange(h, device=device)[None]
    cols = torch.arange(w, device=device)[None]
    in_rows = (rows >= top) & (rows < top + size_h)          # (B, H)
    in_cols = (cols >= left) & (cols < left + size_w)        # (B, W)
    inside = in_rows[:, :, None] & in_cols[:, None, :]
    return (~inside).to(dtype or torch.float32)[:, None]


def cutout(x: Tensor, centre_h: Tensor, centre_w: Tensor, ratio: float = 0.5) -> Tensor:
    """x with a ⌊size·ratio⌋ square set to 0 per sample (DiffAugment ``rand_cutout``)."""
    return x * cutout_mask(x.shape, centre_h, centre_w, ratio, x.device, x.dtype)


def draw_diffaugment(policy: Sequence[str], shape: Sequence[int], generator: torch.Generator | None = None,
                     device=None) -> dict[str, Tensor]:
    """The random numbers of one :func:`diff_augment` of a batch of ``shape`` (B, C, H, W), in the
    ranges of Zhao et al. 2020 (arXiv:2006.10738, the authors' code): ``U[0, 1)`` per colour op, shifts in ``[-⌊H/8⌋, ⌊H/8⌋]``, cutout centres in
    ``[0, H + (1 - ⌊H/2⌋ mod 2))``."""
    b, _, h, w = shape
    kw = dict(generator=generator, device=device)
    draws: dict[str, Tensor] = {}
    if "color" in policy:
        for name in ("brightness", "saturation", "contrast"):
            draws[name] = torch.rand(b, **kw)
    if "translation" in policy:
        sh, sw = h // 8, w // 8
        draws["shift_h"] = torch.randint(-sh, sh + 1, (b,), **kw)
        draws["shift_w"] = torch.randint(-sw, sw + 1, (b,), **kw)
    if "cutout" in policy:
        ch, cw = h // 2, w // 2
        draws["cut_h"] = torch.randint(0, h + (1 - ch % 2), (b,), **kw)
        draws["cut_w"] = torch.randint(0, w + (1 - cw % 2), (b,), **kw)
    return draws


def diff_augment(x: Tensor, policy: Sequence[str] = POLICIES, draws: dict[str, Tensor] | None = None) -> Tensor:
    """DiffAugment's T(x) (Zhao et al. 2020, arXiv:2006.10738, Eq. 2-3): the ops of ``policy`` in the
    authors' order (colour, translation, cutout), with ``draws`` (fresh ones when None). Images ``(B, C, H, W)``."""
    if x.dim() != 4:
        raise ConfigError(f"diffaugment transforms images (batch, channels, height, width), got shape "
                          f"{tuple(x.shape)}")
    if draws is None:
        draws = draw_diffaugment(policy, x.shape, device=x.device)
    if "color" in policy:
        x = contrast(saturation(brightness(x, draws["brightness"]), draws["saturation"]), draws["contrast"])
    if "translation" in policy:
        x = translate(x, draws["shift_h"], draws["shift_w"])
    if "cutout" in policy:
        x = cutout(x, draws["cut_h"], draws["cut_w"])
    return x


def check_policy(name: str, policy: Sequence[str]) -> tuple[str, ...]:
    policy = tuple(policy)
    bad = [p for p in policy if p not in POLICIES]
    require(bool(policy) and not bad, f"trick {name!r}: policy must be some of {', '.join(POLICIES)} "
            f"(e.g. policy=color,translation,cutout), got {','.join(policy) or 'nothing'}")
    return policy


@register_trick("diffaugment", paper="Zhao et al. 2020, arXiv:2006.10738, Eq. 2-3 (DiffAugment)",
                summary="the same random differentiable colour/translation/cutout on real and fake D inputs, "
                        "in D's and G's steps")
class DiffAugment(Trick):
    """:func:`diff_augment` with ``policy`` on both of D's inputs in every D pass, G's included."""

    order = 30   # after replay (a replayed fake is augmented too), before packing and instance noise
    needs_images = True

    def __init__(self, policy: tuple[str, ...] = POLICIES):
        self.policy = check_policy("diffaugment", policy)

    def d_inputs(self, real: Tensor | None, fake: Tensor, gan, phase: str) -> tuple[Tensor | None, Tensor]:
        return (None if real is None else diff_augment(real, self.policy)), diff_augment(fake, self.policy)
