"""DCGAN generator and discriminator (Radford et al. 2016, arXiv:1511.06434, §3) for any image size.

G: z ``(B, z_dim)`` -> a linear projection to a small ``(C0, h0, w0)`` map (the paper's
"project and reshape"), then stride-2 4x4 transposed convolutions with batch norm and
ReLU, each doubling the spatial size and halving the channels, and a tanh output.
D mirrors it: stride-2 4x4 convolutions with leaky ReLU (0.2), batch norm on every one but
the first, then a linear head on the flattened map (the paper's last conv over the whole
map is that linear map).

Any size: the number of stride-2 layers is the largest n (up to ``max_layers``) such that
every spatial size divides by 2^n and stays >= 4 after it, so 64 -> 4x4 start (4 layers),
32 -> 4x4 (3), 28 -> 7x7 (2), 16 -> 4x4 (2), 8 -> 4x4 (1). Sizes with no such n (odd, or
< 8) get n = 0: G is the projection and one 3x3 convolution, D one stride-1 3x3 convolution.
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import nets


def stride2_layers(spatial: tuple[int, ...], max_layers: int = 4, smallest: int = 4) -> int:
    """The most stride-2 layers (up to ``max_layers``) that halve every size in ``spatial`` exactly
    and leave it >= ``smallest``."""
    n = 0
    while n < max_layers and all(s % 2 ** (n + 1) == 0 and s // 2 ** (n + 1) >= smallest for s in spatial):
        n += 1
    return n


def _image_shape(data_shape: tuple[int, ...], net: str) -> tuple[int, tuple[int, int]]:
    if len(data_shape) != 3 or min(data_shape) < 1:
        raise ConfigError(f"net {net!r} makes images (C, H, W); the data has samples of shape {tuple(data_shape)}")
    return data_shape[0], (data_shape[1], data_shape[2])


class DCGANGenerator(nn.Module):
    """z ``(B, z_dim)`` -> images ``(B, C, H, W)`` in [-1, 1]."""

    def __init__(self, z_dim: int, out_shape: tuple[int, int, int], width: int = 64, batch_norm: bool = True,
                 max_layers: int = 4):
        super().__init__()
        self.z_dim, self.out_shape = z_dim, tuple(out_shape)
        self.z_shape = (z_dim,)
        channels, (h, w) = out_shape[0], out_shape[1:]
        n = stride2_layers((h, w), max_layers)
        self.start = (width * 2 ** max(n - 1, 0), h // 2 ** n, w // 2 ** n)
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        # one Sequential from z to the image, so MAD-GAN can share G's first layers (share=)
        layers: list[nn.Module] = [nn.Linear(z_dim, math.prod(self.start), bias=not batch_norm),
                                   nn.Unflatten(1, self.start), norm(self.start[0]), nn.ReLU()]
        c = self.start[0]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=not batch_norm), norm(c // 2), nn.ReLU()]
            c //= 2
        last = nn.ConvTranspose2d(c, channels, 4, 2, 1) if n else nn.Conv2d(c, channels, 3, 1, 1)
        self.net = nn.Sequential(*layers, last, nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.flatten(1))


class DCGANDiscriminator(nn.Module):
    """images ``(B, C, H, W)`` -> logits ``(B,)`` (or ``(B, outputs)``); ``features`` ends flat, ``head`` is linear."""

    def __init__(self, in_shape: tuple[int, int, int], width: int = 64, batch_norm: bool = True, outputs: int = 1,
                 max_layers: int = 4):
        super().__init__()
        self.in_shape = tuple(in_shape)
        channels, (h, w) = in_shape[0], in_shape[1:]
        n = stride2_layers((h, w), max_layers)
        layers: list[nn.Module] = []
        c_in, c = channels, width
        if n == 0:
            layers += [nn.Conv2d(c_in, c, 3, 1, 1), nn.LeakyReLU(0.2)]
        for i in range(n):
            c = width * 2 ** i
            layers.append(nn.Conv2d(c_in, c, 4, 2, 1, bias=not (batch_norm and i)))
            if batch_norm and i:   # none on D's input layer (the paper's choice)
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(c * (h // 2 ** n) * (w // 2 ** n), outputs)

    def forward(self, x: Tensor) -> Tensor:
        out = self.head(self.features(x))
        return out.squeeze(1) if out.shape[1] == 1 else out


@nets.register("dcgan", paper="Radford et al. 2016, arXiv:1511.06434",
               summary="DCGAN conv G and D for images of any size and channel count (28 -> 7x7 start)")
def dcgan(role: str, data_shape: tuple[int, ...], z_dim: int = 100, width: int = 64, batch_norm: bool = True,
          outputs: int = 1, max_layers: int = 4) -> nn.Module:
    """``width``: channels of D's first layer and G's last hidden one (doubling towards the small end);
    ``batch_norm``: the paper's batch norm (off for WGAN-GP critics); ``outputs``: D's logits per sample
    (MAD-GAN: k+1); ``max_layers``: most stride-2 layers."""
    if width < 1 or outputs < 1 or max_layers < 0:
        raise ConfigError(f"net 'dcgan': width and outputs must be >= 1 and max_layers >= 0, "
                          f"got width={width}, outputs={outputs}, max_layers={max_layers}")
    shape = (_image_shape(data_shape, "dcgan")[0], *data_shape[1:])
    if role == "generator":
        return DCGANGenerator(z_dim, shape, width, batch_norm, max_layers)
    return DCGANDiscriminator(shape, width, batch_norm, outputs, max_layers)
