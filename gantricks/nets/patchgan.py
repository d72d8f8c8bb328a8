"""PatchGAN discriminators (Isola et al. 2017, arXiv:1611.07004, §3.2.2 and §4.4).

D classifies every N x N patch of its input as real or fake: a fully convolutional net
whose output is a map of logits ``(B, 1, H', W')``, one per patch, each cell seeing an
N x N window of the input (its receptive field). The loss is the mean over the map
(``gantricks.losses`` take logits of any shape).

``n_layers`` >= 1 is pix2pix's ``NLayerDiscriminator``: ``n_layers`` stride-2 4x4 convolutions
(channels ``width·min(2^i, 8)``; norm on all but the first; leaky ReLU 0.2), then a
stride-1 4x4 convolution and a stride-1 4x4 convolution to one channel. Its receptive
field: n_layers=1 -> 16, 2 -> 34, 3 -> 70 (the paper's default), 4 -> 142, 5 -> 286.
``n_layers=0`` is the paper's 1x1 "PixelGAN" (``PixelDiscriminator``: 1x1 convolutions).
A receptive field at least as large as the image is the paper's "ImageGAN"
(:func:`whole_image_layers` gives the smallest such n_layers).

For pix2pix, D is conditional: it sees the input image and the (real or translated)
output concatenated along the channels; a paired dataset's batch has that layout already.
"""
from __future__ import annotations

from typing import Literal, NamedTuple

from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import nets

Norm = Literal["batch", "instance", "none"]


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"norm must be batch, instance or none, got {kind!r}")


def conv_layers(n_layers: int) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of each convolution of the PatchGAN with ``n_layers``, input to output."""
    if n_layers < 0:
        raise ConfigError(f"patchgan: n_layers must be >= 0, got {n_layers}")
    if n_layers == 0:
        return [(1, 1, 0)] * 3
    return [(4, 2, 1)] * n_layers + [(4, 1, 1), (4, 1, 1)]


class PatchGeometry(NamedTuple):
    receptive_field: int        # pixels (per side) of the input that one output cell sees
    output_size: int | None     # cells (per side) of the output map for the given input size


def receptive_field(n_layers: int, input_size: int | None = None) -> PatchGeometry:
    """The receptive field of one output cell of ``patchgan:n_layers=...`` and, for an input of
    ``input_size`` pixels per side, the size of its output map (256 in, n_layers=3: 70 and 30)."""
    layers = conv_layers(n_layers)
    rf = 1
    for kernel, stride, _ in reversed(layers):   # from one output cell back to the input
        rf = (rf - 1) * stride + kernel
    size = input_size
    if size is not None:
        for kernel, stride, pad in layers:
            size = (size + 2 * pad - kernel) // stride + 1
            if size < 1:
                raise ConfigError(f"patchgan: an input of {input_size} pixels is too small for n_layers={n_layers}")
    return PatchGeometry(rf, size)


def whole_image_layers(image_size: int) -> int:
    """The smallest n_layers whose receptive field covers an image of ``image_size`` pixels (an "ImageGAN")."""
    n = 1
    while receptive_field(n).receptive_field < image_size:
        n += 1
    return n


class PatchDiscriminator(nn.Module):
    """images ``(B, C, H, W)`` -> a map of patch logits ``(B, 1, H', W')``."""

    def __init__(self, in_channels: int, n_layers: int = 3, width: int = 64, norm: Norm = "batch"):
        super().__init__()
        self.n_layers = n_layers
        specs = conv_layers(n_layers)
        act = lambda: nn.LeakyReLU(0.2)   # noqa: E731
        if n_layers == 0:     # PixelGAN: width, 2·width, 1 channels of 1x1 convolutions
            chans = [width, 2 * width]
        else:
            chans = [width * min(2 ** i, 8) for i in range(n_layers)] + [width * min(2 ** n_layers, 8)]
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, (c, (k, s, p)) in enumerate(zip(chans, specs)):
            layers += [nn.Conv2d(c_in, c, k, s, p, bias=(i == 0 or norm == "none"))]
            if i:
                layers.append(norm_layer(norm, c))
            layers.append(act())
            c_in = c
        k, s, p = specs[-1]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(c_in, 1, k, s, p)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def geometry(self, input_size: int | None = None) -> PatchGeometry:
        return receptive_field(self.n_layers, input_size)


@nets.register("patchgan", paper="Isola et al. 2017, arXiv:1611.07004, §3.2.2 (PatchGAN), §4.4 (1x1 to 286x286)",
               summary="fully convolutional D: a logit per patch, (B, 1, H', W'); n_layers sets the patch "
                       "(0: 1x1 PixelGAN, 1: 16, 2: 34, 3: 70)")
def patchgan(role: str, data_shape: tuple[int, ...], n_layers: int = 3, width: int = 64,
             norm: Norm = "batch") -> nn.Module:
    """``n_layers``: stride-2 layers (receptive field 16, 34, 70, ... pixels; 0: PixelGAN, 1x1);
    ``width``: channels of the first layer; ``norm``: batch (pix2pix), instance or none."""
    if role != "discriminator":
        raise ConfigError("net 'patchgan' is a discriminator; use it as the discriminator")
    if len(data_shape) != 3:
        raise ConfigError(f"net 'patchgan' judges images (C, H, W); the data has samples of shape {tuple(data_shape)}")
    if width < 1:
        raise ConfigError(f"net 'patchgan': width must be >= 1, got {width}")
    receptive_field(n_layers, min(data_shape[1:]))    # a clear error for an image too small for n_layers
    return PatchDiscriminator(data_shape[0], n_layers, width, norm)
