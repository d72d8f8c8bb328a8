"""Insert a batch-feature layer into any discriminator, in front of a named weight layer.

Minibatch discrimination and minibatch standard deviation append columns (or channels)
computed over the whole batch to D's features, just before a layer. Rather than
guess where "the next layer" of an arbitrary ``forward`` is, the user names the layer
that should *receive* the extra features (``layer=``, a name from
``D.named_modules()``), and it is replaced by::

    nn.Sequential(feature_layer, widened copy of the layer)

The widened copy is a Linear (or Conv1d/2d/3d) with ``extra`` more inputs (channels):
the original weights are kept for the original inputs and the new columns are
initialized as the layer type initializes itself. This works for any D whose features
reach that layer as ``(B, F)`` (Linear) or ``(B, C, *S)`` (conv), whatever its forward
does around it. Default: the layer called ``head`` (the built-in nets' output layer),
else D's last Linear/Conv layer in registration order.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError
from .common import weight_layers

FORWARD_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def find_layer(D: nn.Module, layer: str, trick: str) -> tuple[str, nn.Module]:
    """The named layer of ``D`` (default: ``head``, else the last Linear/Conv)."""
    modules = dict(D.named_modules())
    candidates = [n for n, m in weight_layers(D) if isinstance(m, FORWARD_WEIGHT_LAYERS)]
    if not layer:
        if isinstance(modules.get("head"), FORWARD_WEIGHT_LAYERS):
            layer = "head"
        elif candidates:
            layer = candidates[-1]
        else:
            raise ConfigError(f"trick {trick!r}: the discriminator has no Linear or Conv layer to put it before")
    if layer not in modules or not layer:
        raise ConfigError(f"trick {trick!r}: the discriminator has no layer {layer!r}; "
                          f"its Linear/Conv layers are: {', '.join(candidates) or 'none'}")
    target = modules[layer]
    if not isinstance(target, FORWARD_WEIGHT_LAYERS):
        raise ConfigError(f"trick {trick!r}: layer {layer!r} is a {type(target).__name__}; name a Linear or Conv "
                          f"layer (one of: {', '.join(candidates) or 'none'})")
    if parametrize.is_parametrized(target) or hasattr(target, "weight_orig"):
        raise ConfigError(f"trick {trick!r} rebuilds layer {layer!r}, which is already re-parametrized "
                          f"(e.g. spectral norm); list {trick!r} before that trick")
    if isinstance(target, nn.modules.conv._ConvNd) and target.groups != 1:
        raise ConfigError(f"trick {trick!r}: layer {layer!r} is a grouped convolution; name another layer")
    return layer, target


def widened(layer: nn.Module, extra: int) -> nn.Module:
    """A copy of a Linear/Conv layer with ``extra`` more inputs; the original weights kept."""
    factory = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    bias = layer.bias is not None
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features + extra, layer.out_features, bias=bias, **factory)
    else:
        new = type(layer)(layer.in_channels + extra, layer.out_channels, layer.kernel_size, stride=layer.stride,
                          padding=layer.padding, dilation=layer.dilation, bias=bias,
                          padding_mode=layer.padding_mode, **factory)
    with torch.no_grad():
        new.weight[:, :layer.weight.shape[1]] = layer.weight
        if bias:
            new.bias.copy_(layer.bias)
    return new


def insert_before(D: nn.Module, layer: str, make: Callable[[str, nn.Module], tuple[nn.Module, int]],
                  trick: str) -> str:
    """Put the module ``make(name, target)`` returns in front of ``D``'s layer ``layer`` and widen that
    layer by the number of features the module adds (its second return value). Returns the layer's name."""
    name, target = find_layer(D, layer, trick)
    feature_layer, extra = make(name, target)
    parent_name, _, attr = name.rpartition(".")
    parent = D.get_submodule(parent_name) if parent_name else D
    setattr(parent, attr, nn.Sequential(feature_layer.to(target.weight.device), widened(target, extra)))
    return name
