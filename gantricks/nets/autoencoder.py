"""Auto-encoders and encoders: EBGAN's energy discriminator, MRGAN's encoder.

EBGAN (Zhao et al. 2017, arXiv:1609.03126, §2.3) makes D an auto-encoder whose
energy is the reconstruction error, ``D(x) = ||Dec(Enc(x)) - x||``. The nets here
return the reconstruction from ``forward`` and expose ``encode`` (the embedding that
EBGAN's pulling-away term reads) and ``decode``; the scheme computes the energy.

Vectors ``(B, d)`` get MLPs; inputs with spatial dimensions ``(B, C, *S)`` (1-, 2- or
3-D, any channel count) get strided convolutions that halve every spatial size per
layer, as EBGAN's MNIST/LSUN discriminators (``4c2s`` layers), mirrored by transposed
convolutions in the decoder.
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import nets
from .mlp import activation as make_activation

_CONV = {1: (nn.Conv1d, nn.ConvTranspose1d), 2: (nn.Conv2d, nn.ConvTranspose2d),
         3: (nn.Conv3d, nn.ConvTranspose3d)}


def per_sample_mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared difference over every non-batch dimension: ``(B, ...) -> (B,)``."""
    return (x - y).pow(2).flatten(1).mean(dim=1)


def _mlp(d_in: int, d_out: int, width: int, depth: int, act: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), make_activation(act)]
        d_in = width
    return nn.Sequential(*layers, nn.Linear(d_in, d_out))


def conv_depth(spatial: tuple[int, ...], depth: int | None, most: int = 3) -> int:
    """How many stride-2 layers: ``depth`` if every size divides by 2**depth, else a clear error;
    by default the most (up to ``most``) that divide."""
    fits = lambda d: all(s % 2 ** d == 0 and s >= 2 ** d for s in spatial)  # noqa: E731
    if depth is None:
        depth = max((d for d in range(most + 1) if fits(d)), default=0)
        if depth == 0:
            raise ConfigError(f"spatial size {spatial} is odd; a strided conv net needs sizes divisible by 2")
    elif depth < 1 or not fits(depth):
        raise ConfigError(f"a conv net of depth {depth} halves the spatial size {spatial} {depth} times; "
                          f"every size must be divisible by {2 ** max(depth, 0)}")
    return depth


def _conv_stack(channels: int, width: int, depth: int, n_spatial: int, act: str) -> tuple[nn.Sequential, int]:
    """``depth`` stride-2 convolutions (4x4, as EBGAN's ``4c2s``); returns the stack and its output channels."""
    conv = _CONV[n_spatial][0]
    layers: list[nn.Module] = []
    for i in range(depth):
        out = width * 2 ** i
        layers += [conv(channels, out, 4, 2, 1), make_activation(act)]
        channels = out
    return nn.Sequential(*layers), channels


class MLPAutoEncoder(nn.Module):
    """x ``(B, *shape)`` -> reconstruction; ``encode`` maps to a ``code``-sized embedding."""

    def __init__(self, in_shape: tuple[int, ...], width: int = 200, depth: int = 2, code: int = 32,
                 activation: str = "leaky-relu"):
        super().__init__()
        self.in_shape = tuple(in_shape)
        d = math.prod(self.in_shape)
        self.encoder = _mlp(d, code, width, depth, activation)
        self.decoder = _mlp(code, d, width, depth, activation)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x.flatten(1))

    def decode(self, h: Tensor) -> Tensor:
        return self.decoder(h).view(-1, *self.in_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


class ConvAutoEncoder(nn.Module):
    """x ``(B, C, *S)`` -> reconstruction; the embedding is the encoder's feature map (no linear bottleneck,
    as EBGAN's conv auto-encoders)."""

    def __init__(self, in_shape: tuple[int, ...], width: int = 64, depth: int | None = None,
                 activation: str = "leaky-relu"):
        super().__init__()
        self.in_shape = tuple(in_shape)
        channels, spatial = self.in_shape[0], self.in_shape[1:]
        if len(spatial) not in _CONV:
            raise ConfigError(f"conv auto-encoder needs (C, L), (C, H, W) or (C, D, H, W) inputs, got {self.in_shape}")
        depth = conv_depth(spatial, depth)
        self.encoder, top = _conv_stack(channels, width, depth, len(spatial), activation)
        deconv = _CONV[len(spatial)][1]
        layers: list[nn.Module] = []
        for i in reversed(range(depth)):
            out = channels if i == 0 else width * 2 ** (i - 1)
            layers.append(deconv(top, out, 4, 2, 1))
            if i:
                layers.append(make_activation(activation))
            top = out
        self.decoder = nn.Sequential(*layers)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, h: Tensor) -> Tensor:
        return self.decoder(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def build_encoder(in_shape: tuple[int, ...], out_features: int, width: int | None = None,
                  depth: int | None = None, activation: str = "leaky-relu") -> nn.Module:
    """A net ``(B, *in_shape) -> (B, out_features)``: an MLP for vectors, strided convs + a linear map otherwise."""
    in_shape = tuple(in_shape)
    if len(in_shape) == 1:
        return nn.Sequential(nn.Flatten(), _mlp(in_shape[0], out_features, width or 200, 2 if depth is None else depth,
                                                activation))
    spatial = in_shape[1:]
    if len(spatial) not in _CONV:
        raise ConfigError(f"no encoder for samples of shape {in_shape}; give one yourself")
    depth = conv_depth(spatial, depth)
    stack, top = _conv_stack(in_shape[0], width or 64, depth, len(spatial), activation)
    flat = top * math.prod(s // 2 ** depth for s in spatial)
    return nn.Sequential(stack, nn.Flatten(), nn.Linear(flat, out_features))


@nets.register("autoencoder", paper="Zhao et al. 2017, arXiv:1609.03126, §2.3 (EBGAN's discriminator)",
               summary="auto-encoder D (MLP for vectors, strided convs for images); reconstruction out, "
                       "encode()/decode() for the embedding")
def autoencoder(role: str, data_shape: tuple[int, ...], z_dim: int = 2, width: int | None = None,
                depth: int | None = None, code: int = 32, activation: str = "leaky-relu") -> nn.Module:
    """MLP: ``width`` 200, ``depth`` 2 hidden layers each side, a ``code``-sized embedding.
    Conv: ``width`` 64 channels doubling per layer, ``depth`` up to 3 stride-2 layers."""
    if role != "discriminator":
        raise ConfigError("net 'autoencoder' is a discriminator (EBGAN's energy); use it as the discriminator")
    if len(data_shape) == 1:
        return MLPAutoEncoder(data_shape, width or 200, 2 if depth is None else depth, code, activation)
    return ConvAutoEncoder(data_shape, width or 64, depth, activation)
