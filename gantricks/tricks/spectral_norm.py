"""Spectral normalization (Miyato et al. 2018, arXiv:1802.05957, Eq. 8).

Every weight layer of D computes with W / σ(W), σ(W) the largest singular value
of W reshaped to a matrix, estimated by power iteration (one step per forward
pass in training mode). That bounds each layer's Lipschitz constant by 1, so D's
gradient with respect to its input cannot blow up. Done with
``torch.nn.utils.parametrizations.spectral_norm``; transposed convolutions keep
their output channels in dim 1 of the weight, so they are normalised along dim 1.
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from .base import D_ARCH, G_ARCH, Trick
from .common import register_trick, require, weight_layers

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def matrix_dim(layer: nn.Module) -> int:
    """The weight dimension that holds the output units: 1 for transposed convolutions, else 0."""
    return 1 if isinstance(layer, _TRANSPOSED) else 0


def apply_spectral_norm(module: nn.Module, n_power_iterations: int = 1, eps: float = 1e-12) -> list[str]:
    """Spectral-normalise every Linear/Conv/ConvTranspose in ``module`` (Miyato et al. 2018, arXiv:1802.05957,
    Eq. 8); names of the layers changed.

    Layers whose weight is already parametrized (or carry the old hook-based
    ``weight_orig``) are left alone.
    """
    done = []
    for name, layer in weight_layers(module):
        if parametrize.is_parametrized(layer, "weight") or hasattr(layer, "weight_orig"):
            continue
        require(not isinstance(layer.weight, nn.parameter.UninitializedParameter),
                f"spectral-norm: layer {name!r} is lazy and not initialised yet; run one forward pass first")
        spectral_norm(layer, n_power_iterations=n_power_iterations, eps=eps, dim=matrix_dim(layer))
        done.append(name)
    return done


@register_trick("spectral-norm", paper="Miyato et al. 2018, arXiv:1802.05957",
                summary="divide each D weight by its largest singular value (generator=true: G too)")
class SpectralNorm(Trick):
    """Spectral normalization of every weight layer of D (and of G with ``generator=true``)."""

    touches = (D_ARCH,)

    def __init__(self, n_power_iterations: int = 1, generator: bool = False):
        require(n_power_iterations >= 1,
                f"trick 'spectral-norm': n_power_iterations must be >= 1, got {n_power_iterations}")
        self.n_power_iterations, self.generator = int(n_power_iterations), bool(generator)
        if self.generator:
            self.touches = (D_ARCH, G_ARCH)

    def validate(self, gan) -> None:
        super().validate(gan)
        for role in ("D", "G") if self.generator else ("D",):
            require(bool(weight_layers(gan.modules[role])),
                    f"trick 'spectral-norm': {role} has no Linear or Conv layer to normalise")

    def setup(self, gan) -> None:
        for role in ("D", "G") if self.generator else ("D",):
            apply_spectral_norm(gan.modules[role], self.n_power_iterations)
