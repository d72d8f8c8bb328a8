"""The ResNet G and D of the spectral-normalization paper's CIFAR-10 experiments
(Miyato et al. 2018, arXiv:1802.05957, Appendix B.4, Table 4; after Gulrajani et al. 2017).

G: z (128) -> linear to 4x4x256 -> 3 up-sampling residual blocks (256 channels; BN, ReLU,
nearest 2x up-sampling, 3x3 conv, BN, ReLU, 3x3 conv; a 1x1 conv on the up-sampled shortcut)
-> BN, ReLU, 3x3 conv to the image channels, tanh.
D: an "optimized" first down-sampling block (conv, ReLU, conv, 2x2 average pool; shortcut
pool then 1x1 conv), one down-sampling block, two plain blocks (128 channels), ReLU, a
global *sum* pool and a linear head.

Other sizes: G has up to 3 up-sampling blocks and D up to 2 down-sampling blocks, as many
as halve every spatial size exactly to >= 4 (28x28: G starts at 7x7, D ends at 7x7).
Spectral normalization is the ``spectral-norm`` trick's job; ``sn=true`` applies it to D
here (for a net used outside the trick pipeline).
"""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import nets
from .dcgan import _image_shape, stride2_layers


class GBlock(nn.Module):
    """Pre-activation residual block of G, up-sampling 2x when ``up``."""

    def __init__(self, c_in: int, c_out: int, up: bool = True):
        super().__init__()
        self.up = up
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if (c_in != c_out or up) else nn.Identity()

    def _up(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.up else x

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(self._up(F.relu(self.bn1(x))))
        h = self.conv2(F.relu(self.bn2(h)))
        return h + self.shortcut(self._up(x))


class DBlock(nn.Module):
    """Residual block of D (no batch norm), down-sampling 2x (average pool) when ``down``;
    ``first``: the optimized input block (no ReLU before the first conv, pool before the shortcut conv)."""

    def __init__(self, c_in: int, c_out: int, down: bool = True, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if (c_in != c_out or down) else nn.Identity()

    def _down(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 2) if self.down else x

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self._down(self.conv2(F.relu(h)))
        skip = self.shortcut(self._down(x)) if self.first else self._down(self.shortcut(x))
        return h + skip


class SumPool(nn.Module):
    """``(B, C, H, W) -> (B, C)``: ReLU then the sum over positions (the paper's global sum pooling)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x).sum(dim=(2, 3))


class ResNetGenerator(nn.Module):
    def __init__(self, z_dim: int, out_shape: tuple[int, int, int], width: int = 256):
        super().__init__()
        self.z_dim, self.z_shape, self.out_shape = z_dim, (z_dim,), tuple(out_shape)
        channels, (h, w) = out_shape[0], out_shape[1:]
        n = stride2_layers((h, w), 3)
        self.start = (width, h // 2 ** n, w // 2 ** n)
        blocks = [GBlock(width, width, up=True) for _ in range(n)] or [GBlock(width, width, up=False)]
        self.net = nn.Sequential(nn.Linear(z_dim, math.prod(self.start)), nn.Unflatten(1, self.start), *blocks, nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, 1, 1),
                                 nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.flatten(1))


class ResNetDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], width: int = 128, outputs: int = 1):
        super().__init__()
        channels, (h, w) = in_shape[0], in_shape[1:]
        n = stride2_layers((h, w), 2)
        blocks = [DBlock(channels, width, down=n >= 1, first=True)]
        blocks += [DBlock(width, width, down=True) for _ in range(n - 1)]
        blocks += [DBlock(width, width, down=False) for _ in range(2)]
        self.features = nn.Sequential(*blocks, SumPool())
        self.head = nn.Linear(width, outputs)

    def forward(self, x: Tensor) -> Tensor:
        out = self.head(self.features(x))
        return out.squeeze(1) if out.shape[1] == 1 else out


@nets.register("resnet-sn", paper="Miyato et al. 2018, arXiv:1802.05957, App. B.4 (CIFAR-10 ResNet)",
               summary="the SN-GAN paper's 32x32 ResNet G (3 up-blocks, 256 ch) and D (4 blocks, 128 ch, sum pool)")
def resnet_sn(role: str, data_shape: tuple[int, ...], z_dim: int = 128, width: int | None = None,
              outputs: int = 1, sn: bool = False) -> nn.Module:
    """``width``: channels (G 256, D 128 by default); ``outputs``: D's logits per sample;
    ``sn``: spectral-normalise D's layers here rather than with the ``spectral-norm`` trick."""
    channels = _image_shape(data_shape, "resnet-sn")[0]
    if (width is not None and width < 1) or outputs < 1:
        raise ConfigError(f"net 'resnet-sn': width and outputs must be >= 1, got width={width}, outputs={outputs}")
    shape = (channels, *data_shape[1:])
    if role == "generator":
        return ResNetGenerator(z_dim, shape, width or 256)
    D = ResNetDiscriminator(shape, width or 128, outputs)
    if sn:
        from ..tricks.spectral_norm import apply_spectral_norm
        apply_spectral_norm(D)
    return D
