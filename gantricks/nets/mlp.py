"""Multilayer perceptrons for vector data; the defaults are PacGAN's 2D-mixture nets.

PacGAN (Lin et al. 2018), synthetic experiments: G has 4 hidden layers of 400 ReLU
units with batch norm; D has 3 hidden layers of 200 maxout units with 5 pieces.
The Unrolled GAN notebook's 2-D nets are ``mlp:width=128,depth=2,activation=tanh,
batch_norm=false,init=orthogonal,init_gain=1.4`` (and ``maxout=1`` for D).
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import nets

ACTIVATIONS = {"relu": nn.ReLU, "leaky-relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh,
               "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}


INITS = ("default", "orthogonal")


def initialize(module: nn.Module, init: str, gain: float) -> None:
    """``orthogonal``: every linear layer's weight orthogonal with ``gain``, its bias 0 (as TF's
    ``orthogonal_initializer`` in the Unrolled GAN notebook); ``default``: torch's own init."""
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}; choose one of: {', '.join(INITS)}")
    if init == "default":
        return
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain)
            nn.init.zeros_(layer.bias)


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]()


class Maxout(nn.Module):
    """Linear map to ``out * pieces`` units, then the max over each group of ``pieces``."""

    def __init__(self, in_features: int, out_features: int, pieces: int):
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear(x)
        return y.view(*y.shape[:-1], -1, self.pieces).amax(dim=-1)


class MLPGenerator(nn.Module):
    """z (B, z_dim) -> x (B, *out_shape)."""

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], width: int = 400, depth: int = 4,
                 activation_name: str = "relu", batch_norm: bool = True, dropout: float = 0.0,
                 output: str = "none"):
        super().__init__()
        self.z_dim, self.out_shape = z_dim, tuple(out_shape)
        layers: list[nn.Module] = []
        d_in = z_dim
        for _ in range(depth):
            layers.append(nn.Linear(d_in, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(activation(activation_name))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d_in = width
        layers.append(nn.Linear(d_in, math.prod(self.out_shape)))
        if output != "none":
            layers.append(activation(output))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.flatten(1)).view(-1, *self.out_shape)


class MLPDiscriminator(nn.Module):
    """x (B, *in_shape) -> logits (B, outputs); ``maxout`` > 1 uses maxout units."""

    def __init__(self, in_shape: tuple[int, ...], width: int = 200, depth: int = 3, maxout: int = 5,
                 activation_name: str = "leaky-relu", outputs: int = 1, dropout: float = 0.0,
                 input_scale: float = 1.0):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.input_scale = input_scale
        layers: list[nn.Module] = []
        d_in = math.prod(self.in_shape)
        for _ in range(depth):
            if maxout > 1:
                layers.append(Maxout(d_in, width, maxout))
            else:
                layers += [nn.Linear(d_in, width), activation(activation_name)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(d_in, outputs)

    def feature_vector(self, x: Tensor) -> Tensor:
        """What ``head`` reads: the features of the flattened (scaled) input (conditional Ds use it)."""
        x = x.flatten(1)
        return self.features(x * self.input_scale if self.input_scale != 1.0 else x)

    def forward(self, x: Tensor) -> Tensor:
        out = self.head(self.feature_vector(x))
        return out.squeeze(1) if out.shape[1] == 1 else out


@nets.register("mlp", paper="PacGAN (Lin et al. 2018), 2D experiments",
               summary="MLP G (4x400 ReLU+BN) and D (3x200 maxout-5), sizes configurable")
def mlp(role: str, data_shape: tuple[int, ...], z_dim: int = 2, width: int | None = None,
        depth: int | None = None, activation: str | None = None, batch_norm: bool = True,
        maxout: int = 5, dropout: float = 0.0, output: str = "none", outputs: int = 1,
        init: str = "default", init_gain: float = 1.0, input_scale: float = 1.0) -> nn.Module:
    """G: ``width`` 400, ``depth`` 4, ReLU, batch norm; D: ``width`` 200, ``depth`` 3, ``maxout`` 5 pieces.
    ``init=orthogonal`` with ``init_gain``: orthogonal weights and zero biases (Unrolled GAN: 0.8 in the paper,
    1.4 in the notebook). ``input_scale`` (D only): D multiplies its input by it first (the paper's D: 1/4)."""
    if role == "generator":
        net = MLPGenerator(z_dim, data_shape, width or 400, 4 if depth is None else depth,
                           activation or "relu", batch_norm, dropout, output)
    else:
        net = MLPDiscriminator(data_shape, width or 200, 3 if depth is None else depth, maxout,
                               activation or "leaky-relu", outputs, dropout, input_scale)
    initialize(net, init, init_gain)
    return net


