"""The U-Net generator of pix2pix (Isola et al. 2017, arXiv:1611.07004, §3.2.1 and App. 6.1.1).

An encoder of stride-2 4x4 convolutions (leaky ReLU 0.2; batch norm on all but the first
and the innermost), a decoder of stride-2 4x4 transposed convolutions (ReLU, batch norm,
dropout 0.5 on the innermost up to 3 decoder layers but
the output layer; pix2pix's 8-deep net puts it on the 3 just outside the innermost, which a
28x28 net of depth 2 does not have), and skip connections that
concatenate encoder layer i to the decoder layer that mirrors it, so the low-level
structure of the input (edges, positions) reaches the output directly. Channels
``width·min(2^i, 8)``; tanh output. pix2pix uses no noise input: dropout is the noise.

Depth: as many halvings as the image size allows exactly (up to 8: 256x256 -> 1x1 as
pix2pix's ``unet_256``; 28x28 -> 2, down to 7x7).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import nets
from .dcgan import stride2_layers
from .patchgan import Norm, norm_layer


class UNetGenerator(nn.Module):
    """images ``(B, in_channels, H, W)`` -> images ``(B, out_channels, H, W)`` in [-1, 1]."""

    def __init__(self, in_channels: int, out_channels: int, size: tuple[int, int], width: int = 64,
                 depth: int = 0, norm: Norm = "batch", dropout: float = 0.5):
        super().__init__()
        most = stride2_layers(size, 8, smallest=1)
        if depth == 0:
            depth = most
        if depth < 1 or depth > most:
            raise ConfigError(f"unet: an image of {size} halves exactly at most {most} times; "
                              f"depth must be 1..{most}, got {depth}")
        self.in_channels, self.out_channels, self.depth = in_channels, out_channels, depth
        chans = [width * min(2 ** i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        for i in range(depth):
            c_in = in_channels if i == 0 else chans[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(c_in, chans[i], 4, 2, 1))
            if 0 < i < depth - 1:
                layers.append(norm_layer(norm, chans[i]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for i in range(depth):       # up[i] mirrors down[i]
            c_in = chans[i] if i == depth - 1 else 2 * chans[i]
            if i == 0:
                layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1), nn.Tanh()]
            else:
                layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, chans[i - 1], 4, 2, 1), norm_layer(norm, chans[i - 1])]
                if dropout > 0 and i >= depth - 3:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"unet translates images (B, {self.in_channels}, H, W), got {tuple(x.shape)}; "
                              f"it takes no noise: use it with the pix2pix scheme")
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        for i in reversed(range(self.depth)):
            if i < self.depth - 1:
                x = torch.cat([x, skips[i]], dim=1)
            x = self.up[i](x)
        return x


@nets.register("unet", paper="Isola et al. 2017, arXiv:1611.07004, §3.2.1 (pix2pix's U-Net)",
               summary="encoder-decoder G with skip connections, image in -> image out (translation)")
def unet(role: str, data_shape: tuple[int, ...], width: int = 64, depth: int = 0, norm: Norm = "batch",
         dropout: float = 0.5, in_channels: int = 0, paired: bool = False) -> nn.Module:
    """``depth``: stride-2 layers (0: as many as the size allows, up to 8); ``dropout``: rate in the
    innermost decoder layers. ``paired``: ``data_shape`` is a translation pair (A and B along the
    channels; the ``pix2pix`` scheme sets this): G maps ``in_channels`` (0: half) to the rest.
    Otherwise G maps images of ``data_shape`` to images of the same shape."""
    if role != "generator":
        raise ConfigError("net 'unet' is a generator (image to image); use it as the generator")
    if len(data_shape) != 3:
        raise ConfigError(f"net 'unet' translates images (C, H, W); the data has samples of shape {tuple(data_shape)}")
    channels = data_shape[0]
    if paired:
        a = in_channels or channels // 2
        if not 0 < a < channels:
            raise ConfigError(f"net 'unet': a pair of {channels} channels cannot give the input {a} of them")
        c_in, c_out = a, channels - a
    else:
        c_in, c_out = in_channels or channels, channels
    if width < 1 or not 0 <= dropout < 1:
        raise ConfigError(f"net 'unet': width must be >= 1 and dropout in [0, 1), got {width}, {dropout}")
    return UNetGenerator(c_in, c_out, (data_shape[1], data_shape[2]), width, depth, norm, dropout)
