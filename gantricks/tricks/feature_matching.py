"""Feature matching (Salimans et al. 2016, arXiv:1606.03498, §3.1).

G matches the mean of D's intermediate features on real data:

    L_G = || E_x f(x) - E_z f(G(z)) ||²₂

where f is the activation of one layer of D. The paper uses it as G's whole
objective (``alone=true``); with ``alone=false`` it is added to the adversarial
loss. The official code averages the squares instead of summing them (a factor
1/dim); we follow the equation.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .base import G_LOSS, StepContext, Trick
from .common import register_trick, require, weight_layers


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """‖E f(x) - E f(G(z))‖²: squared L2 distance between the batch means of two feature tensors ``(B, ...)``
    (Salimans et al. 2016, arXiv:1606.03498, §3.1)."""
    return (real_features.flatten(1).mean(0) - fake_features.flatten(1).mean(0)).pow(2).sum()


def feature_layer(D: nn.Module, layer: str = "") -> tuple[str, nn.Module, bool]:
    """The module whose features are matched and whether its *input* (True) or output is used.

    ``layer`` names a submodule (``D.named_modules()``): its output is used. Left
    empty: the input of D's last weight layer, i.e. the features the output layer reads.
    Names are those of D after the tricks that rebuild it have run.
    """
    modules = dict(D.named_modules())
    if layer:
        require(layer in modules, f"trick 'feature-matching': D has no layer {layer!r}; "
                f"its layers are: {', '.join(n for n in modules if n) or 'none'}")
        return layer, modules[layer], False
    layers = weight_layers(D)
    require(bool(layers), "trick 'feature-matching': D has no Linear or Conv layer to take features from; "
                          "name one with layer=NAME")
    name, module = layers[-1]
    return name, module, True


class _Capture:
    """Records one module's input or output while ``on``. A plain closure-held object, so a
    deep copy of D (or ``torch.func.functional_call`` on it) still writes here."""

    def __init__(self):
        self.on = False
        self.features: Tensor | None = None

    def hook(self, use_input: bool) -> Callable:
        def pre_hook(module, args):
            if self.on:
                self.features = args[0]

        def forward_hook(module, args, output):
            if self.on:
                self.features = output[0] if isinstance(output, (tuple, list)) else output
        return pre_hook if use_input else forward_hook


@register_trick("feature-matching", paper="Salimans et al. 2016, arXiv:1606.03498, §3.1",
                summary="G matches the mean of D's features on real data (alone: instead of the adversarial loss)")
class FeatureMatching(Trick):
    """Feature matching at ``layer`` (default: the input of D's last weight layer)."""

    touches = (G_LOSS,)

    def __init__(self, weight: float = 1.0, layer: str = "", alone: bool = True):
        require(weight > 0, f"trick 'feature-matching': weight must be > 0, got {weight}")
        self.weight, self.layer = float(weight), layer
        self.replaces_g_loss = bool(alone)
        self._capture = _Capture()
        self._hooked = False

    def validate(self, gan) -> None:
        super().validate(gan)
        feature_layer(gan.D, self.layer)          # a bad name fails when the GAN is built

    def _hook(self, D: nn.Module) -> None:
        # on first use, after every trick's setup: the layer is looked up in the final D
        # (e.g. after minibatch-discrimination has rebuilt its head), whatever the trick order
        _, module, use_input = feature_layer(D, self.layer)
        hook = self._capture.hook(use_input)
        (module.register_forward_pre_hook if use_input else module.register_forward_hook)(hook)
        self._hooked = True

    def features(self, D: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """Run ``D`` on ``x`` and return the captured features."""
        self._capture.on, self._capture.features = True, None
        try:
            D(x)
        finally:
            self._capture.on = False
        features, self._capture.features = self._capture.features, None
        require(features is not None, "trick 'feature-matching': the feature layer did not run in D's forward")
        return features

    def g_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        require(ctx.real is not None, f"trick 'feature-matching' needs the real batch in G's step; "
                                      f"scheme {ctx.gan.scheme.name!r} passes none")
        if not self._hooked:
            self._hook(ctx.gan.D)
        # real data goes through the same D-input hooks (noise, packing) as the fakes did
        real_in, _ = ctx.gan.d_inputs(ctx.real, ctx.fake.detach(), "G")
        with torch.no_grad():
            real_f = self.features(ctx.D, real_in)
        fake_f = self.features(ctx.D, ctx.fake_in)
        return {"g_feature_matching": self.weight * feature_matching_loss(real_f, fake_f)}
