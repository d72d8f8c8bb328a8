"""PacGAN (Lin et al. 2018, arXiv:1712.04086, §3): D judges m samples packed together.

A batch of B samples ``(B, C, *S)`` becomes B/m packs ``(B/m, m·C, *S)``: samples
``i·m .. i·m + m - 1`` concatenated along the feature/channel dimension (the paper's
"packing": the input layer of D takes m samples' worth of inputs, the rest of D is
unchanged). Real packs hold only real samples and fake packs only generated ones; a
pack gets one label. A batch not divisible by m is refused (no sample is silently
dropped): choose a batch size that is a multiple of m.

With the builder's nets, D is built for the packed shape (``discriminator_input_shape``);
your own D must take packed inputs, ``(B/m, m·d)`` for vectors and ``(B/m, m·C, ...)``
for images, which is checked with one dry forward when the GAN knows ``data_shape``.
Packing runs after every other D-input trick (instance noise and replay act on single
samples).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from .base import D_ARCH, D_INPUTS, Trick
from .common import register_trick, require


def pack(x: Tensor, m: int) -> Tensor:
    """``(B, C, ...) -> (B/m, m·C, ...)``: each m consecutive samples concatenated along dim 1 (PacGAN's
    packing, Lin et al. 2018, arXiv:1712.04086, §3)."""
    if x.shape[0] % m:
        raise ConfigError(f"pacgan: a batch of {x.shape[0]} samples does not split into packs of m={m}; "
                          f"use a batch size that is a multiple of {m}")
    return x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])


def packed_shape(shape: tuple[int, ...], m: int) -> tuple[int, ...]:
    """The shape of one pack of m samples of ``shape``."""
    return (m * shape[0], *shape[1:])


@register_trick("pacgan", paper="Lin et al. 2018, arXiv:1712.04086, §3",
                summary="D judges m samples packed together (PacGAN-m); the builder widens D's input")
class PacGAN(Trick):
    """Pack ``m`` samples per D input.

    Args:
        m: samples per pack (PacGAN2, 3, 4 in the paper's tables).
    """

    touches = (D_ARCH, D_INPUTS)
    order = 90      # pack last: other D-input tricks act on single samples

    def __init__(self, m: int = 2):
        require(m >= 2, f"pacgan: m must be >= 2 (m=1 is the unpacked GAN; leave the trick out), got {m}")
        self.m = m

    def discriminator_input_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return packed_shape(tuple(shape), self.m)

    def validate(self, gan) -> None:
        super().validate(gan)
        if gan.data_shape is None:
            return
        D, was = gan.D, gan.D.training
        probe = torch.zeros(2, *packed_shape(gan.data_shape, self.m), device=gan.device)
        D.eval()
        try:
            with torch.no_grad():
                D(probe)
        except RuntimeError as err:
            raise ConfigError(f"pacgan: D must take packs of {self.m} samples, shape (B/{self.m}, "
                              f"{', '.join(map(str, packed_shape(gan.data_shape, self.m)))}); it failed on them "
                              f"({str(err).splitlines()[0]}); build D for the packed input") from None
        finally:
            D.train(was)

    def d_inputs(self, real: Tensor | None, fake: Tensor, gan, phase: str) -> tuple[Tensor | None, Tensor]:
        return (pack(real, self.m) if real is not None else None), pack(fake, self.m)
