"""Mode-regularized GANs (Che et al. 2017, arXiv:1612.02136): an encoder E maps data to noise
space so that G(E(x)) can be compared with x.

``mrgan``, the regularized GAN (§3.1-3.2). D trains as usual on x against G(z). G and E
minimise the geometric regularizer (the reconstruction error) and the mode regularizer
(G(E(x)) should look real to D)::

    T_G = L_G(D(G(z))) + λ1 · d(x, G(E(x))) + λ2 · L_G(D(G(E(x))))
    T_E =                λ1 · d(x, G(E(x))) + λ2 · L_G(D(G(E(x))))

with ``L_G`` the configured generator loss (nonsaturating: -log D) and ``d`` the mean
squared error per sample. Signs: the paper prints ``+ λ2 log D(G∘E(x))`` in T_G and
T_E, both minimised, which would push G(E(x)) towards looking *fake*; its text (the
regularizer rewards G∘E(x) that D finds real, to pull G towards the modes of x) and
its Algorithm 1, whose manifold step *ascends* ``λ log D1(G(E(x)))``, both say the
opposite, and that is what is implemented: λ2 · (-log D(G(E(x)))). Each term updates
the nets it depends on: the adversarial term on G(z) only G, the regularizers G and E
(one backward, both optimizers step).

``mdgan``, manifold-diffusion training (§3.3, Algorithm 1), with two discriminators:

* manifold step: D_M (``gan.D``) tells x (real) from G(E(x)) (fake); G and E minimise
  λ1 · d(x, G(E(x))) + λ2 · L_G(D_M(G(E(x)))) (the algorithm ascends
  λ log D_M(G(E(x))) - ‖x - G(E(x))‖²);
* diffusion step: D_D (``gan.modules["D_diffusion"]``, a re-initialized copy of D)
  tells G(E(x)) (as real) from G(z) (fake); G minimises L_G(D_D(G(z))), spreading the
  samples of G(z) over the manifold G∘E has matched to the data.

Both steps use ``gan.discriminator_loss`` and ``gan.generator_loss`` with the
discriminator in question, so loss, label and penalty tricks apply to both D_M and D_D.
``recon_mse`` (the geometric term on the step's real batch) is logged by both schemes.
G's passes on E(x) leave its batch-norm running statistics alone: those must describe
G(z) batches, which they normalise when G samples in eval mode (else eval-mode samples
drift off the modes: measured on ring8, mdgan at 5,000 steps: 72 % high-quality samples
in train mode, 0.5 % in eval mode).
The encoder is built from ``data_shape`` and ``z_dim`` (an MLP for vectors, strided
convs for images) unless one is given: ``MRGAN(encoder=my_encoder)``. λ1, λ2 defaults
are ours, for the 2D mixtures.

    gantricks train --data ring8 --scheme mrgan:geometric=1,mode=0.1
    gt.GAN(G, D, z_dim=2, data_shape=(2,), scheme="mdgan")         # or scheme=MDGAN(encoder=E)
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..nets.autoencoder import build_encoder, per_sample_mse
from ..registry import schemes
from ..tricks.base import D_INPUTS, Trick
from .base import Scheme
from .parts import reinitialized_copy, running_stats_kept
from .standard import Standard

if TYPE_CHECKING:
    from ..gan import GAN


class _Reshape(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.view(-1, *self.shape)


def mode_regularizers(x: Tensor, recon: Tensor, adversarial: Callable[[Tensor], Tensor], geometric: float,
                      mode: float) -> tuple[Tensor, Tensor, Tensor]:
    """MRGAN's regularizers (Che et al. 2017, arXiv:1612.02136, §3.2): (λ1·d(x, G(E(x))) + λ2·L_G(G(E(x))),
    the mean squared error d, the mode term), ``recon`` = G(E(x)) and ``adversarial`` G's loss on it."""
    mse = per_sample_mse(recon, x).mean()
    mode_term = adversarial(recon) if mode else mse.new_zeros(())
    return geometric * mse + mode * mode_term, mse, mode_term


def _mode_term(gan: "GAN", recon: Tensor) -> Tensor:
    """The mode regularizer's L_G(D(G(E(x)))): the configured G loss on D's view of G(E(x))."""
    _, recon_in = gan.d_inputs(None, recon, "G")
    logits = gan.D(recon_in)
    return gan.loss.g(logits, torch.ones(logits.shape[0], device=logits.device))


class _Regularized(Scheme):
    """What both schemes share: the encoder and the two regularizers."""

    def __init__(self, geometric: float, mode: float, encoder: "nn.Module | None" = None,
                 width: int | None = None, depth: int | None = None):
        for key, value in (("geometric", geometric), ("mode", mode)):
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"scheme {self.name!r}: {key} must be a number >= 0, got {value}")
        if encoder is not None and not isinstance(encoder, nn.Module):
            raise ConfigError(f"scheme {self.name!r}: encoder must be an nn.Module mapping data to noise "
                              f"(pass it from Python), got {encoder!r}")
        self.geometric, self.mode, self.encoder, self.width, self.depth = geometric, mode, encoder, width, depth

    def setup(self, gan: "GAN") -> None:
        E = self.encoder
        if E is None:
            if gan.data_shape is None:
                raise ConfigError(f"scheme {self.name!r} builds its encoder from the data's shape: give "
                                  f"GAN(..., data_shape=...) or an encoder")
            E = nn.Sequential(build_encoder(gan.data_shape, math.prod(gan.z_shape), self.width, self.depth),
                              _Reshape(gan.z_shape))
        gan.modules["E"] = E.to(gan.device)

    def regularizers(self, gan: "GAN", x: Tensor, adversarial: Callable[[Tensor], Tensor]) -> tuple[Tensor, dict]:
        """λ1 · d(x, G(E(x))) + λ2 · adversarial(G(E(x))), with grad to G and E."""
        with running_stats_kept(gan.G):
            recon = gan.G(gan.modules["E"](x))
        total, mse, mode_term = mode_regularizers(x, recon, adversarial, self.geometric, self.mode)
        return total, {"recon_mse": mse.detach(), "mode_reg": mode_term.detach()}


@schemes.register("mrgan", paper="Che et al. 2017, arXiv:1612.02136, §3.1-3.2",
                  summary="encoder E; G and E minimise λ1·||x - G(E(x))||² and λ2·(-log D(G(E(x))))")
class MRGAN(_Regularized, Standard):
    """The regularized GAN: the standard scheme's D updates; G's update adds the regularizers and trains E.

    Args:
        geometric: λ1, weight of the reconstruction error d(x, G(E(x))).
        mode: λ2, weight of G's loss on G(E(x)) against D.
        encoder: your own encoder (Python only); default: built from data_shape and z_dim.
        width, depth: size of the built encoder.
    """

    name = "mrgan"

    def __init__(self, geometric: float = 1.0, mode: float = 0.1, encoder: "nn.Module | None" = None,
                 width: int | None = None, depth: int | None = None):
        super().__init__(geometric, mode, encoder, width, depth)

    def generator_update(self, gan: "GAN", real: Tensor, next_real: Callable[[], Tensor], logs: dict) -> None:
        """G's adversarial loss on fresh noise plus the regularizers on a fresh real batch; G and E step."""
        with gan.frozen("D"):
            g_adv, g_logs = self.generator_loss(gan, gan.generate(real.shape[0]), real, next_real)
            reg, reg_logs = self.regularizers(gan, next_real(), lambda recon: _mode_term(gan, recon))
            g_total = g_adv + reg
            gan.update(("G", "E"), g_total, logs)
        logs.update(g_logs, **reg_logs, g_loss=g_total.detach())


@schemes.register("mdgan", paper="Che et al. 2017, arXiv:1612.02136, §3.3, Alg. 1",
                  summary="manifold step (D_M: x vs G(E(x))) then diffusion step (D_D: G(E(x)) vs G(z))")
class MDGAN(_Regularized):
    """Manifold-diffusion GAN: two discriminators, two steps per iteration.

    Args:
        geometric: λ1, weight of the reconstruction error in the manifold step.
        mode: λ2, weight of G's adversarial loss against D_M on G(E(x)).
        encoder, width, depth: as for ``mrgan``.
    """

    name = "mdgan"

    def __init__(self, geometric: float = 1.0, mode: float = 1.0, encoder: "nn.Module | None" = None,
                 width: int | None = None, depth: int | None = None):
        super().__init__(geometric, mode, encoder, width, depth)

    def validate(self, gan: "GAN") -> None:
        for trick in gan.tricks:   # e.g. a replay buffer would mix G(E(x)) and G(z), fake for one D, real for the other
            if D_INPUTS in trick.touches and type(trick).state_dict is not Trick.state_dict:
                raise ConfigError(f"scheme 'mdgan' cannot use trick {trick.name!r}: it keeps D inputs across steps, "
                                  f"and mdgan's two discriminators see G(E(x)) as fake and as real")

    def setup(self, gan: "GAN") -> None:
        super().setup(gan)
        gan.modules["D_diffusion"] = reinitialized_copy(gan.D, "the discriminator").to(gan.device)

    def step(self, gan: "GAN", next_real: Callable[[], Tensor]) -> dict[str, Tensor]:
        logs: dict[str, Tensor] = {}
        G, E, D_M, D_D = gan.G, gan.modules["E"], gan.D, gan.modules["D_diffusion"]
        # manifold step: match G∘E to the data
        for _ in range(gan.n_critic):
            x = next_real()
            with torch.no_grad(), running_stats_kept(G):
                recon = G(E(x))
            d_total, d_logs = gan.discriminator_loss(D_M, x, recon)
            gan.update("D", d_total, logs)
        logs.update({f"manifold_{k}": v for k, v in d_logs.items()})
        with gan.frozen("D", "D_diffusion"):
            reg, reg_logs = self.regularizers(gan, x, lambda recon: gan.generator_loss(D_M, recon, x)[0])
            gan.update(("G", "E"), reg, logs)
        # diffusion step: spread G(z) over the matched manifold
        for _ in range(gan.n_critic):
            x = next_real()
            with torch.no_grad(), running_stats_kept(G):
                target = G(E(x))
            d_total, d_logs = gan.discriminator_loss(D_D, target, gan.generate(x.shape[0]).detach())
            gan.update("D_diffusion", d_total, logs)
        logs.update({f"diffusion_{k}": v for k, v in d_logs.items()})
        with gan.frozen("D", "D_diffusion"):
            g_total, g_logs = gan.generator_loss(D_D, gan.generate(x.shape[0]), target)
            gan.update("G", g_total, logs)
        logs.update(g_logs, **reg_logs, manifold_loss=reg.detach(), d_loss=logs["manifold_d_loss"])
        return logs
