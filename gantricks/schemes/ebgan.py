"""Energy-based GAN (Zhao et al. 2017, arXiv:1609.03126) with the pulling-away term.

D is an auto-encoder and its energy is the per-sample reconstruction error
``D(x) = mean((Dec(Enc(x)) - x)²)`` (the paper's MSE). With a margin ``m`` (Eq. 1-2)::

    L_D = D(x) + [m - D(G(z))]^+          L_G = D(G(z)) + λ_PT · f_PT(S)

where ``S`` are the encoder's embeddings of the generated batch and the pulling-away
term (Eq. 6) is the mean squared cosine similarity between different samples::

    f_PT(S) = 1 / (N(N-1)) · Σ_i Σ_{j≠i} ( S_iᵀ S_j / (‖S_i‖ ‖S_j‖) )²

The paper's λ_PT is 0.1. The margin depends on the data's scale (the energy is an MSE
in data units); our default 0.25 comes from ring8 (PacGAN protocol, 5,000 steps, one
seed: m = 4 gave 4 % high-quality samples, m = 1 5 %, m = 0.25 57 %, m = 0.1 49 %).

D is any module with ``encode(x)`` and ``decode(h)`` (the ``autoencoder`` net); with the
builder's nets an ``mlp`` (``dcgan``, ``resnet-sn``) discriminator becomes the ``autoencoder``
net (MLP for vectors, strided convs for images), keeping its ``width``, ``depth`` and
``activation`` options (per side of the auto-encoder). The scheme
has its own losses, so tricks that change D's labels or add loss terms over binary
logits are refused; D-input tricks (PacGAN packing, instance noise) and D/G architecture
tricks apply.

    gantricks train --data ring8 --scheme ebgan:margin=0.25,pt_weight=0.1
    gt.GAN(G, my_autoencoder, z_dim=2, scheme="ebgan:margin=1")   # my_autoencoder has encode/decode
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..nets.autoencoder import per_sample_mse
from ..registry import Spec, schemes
from ..tricks.base import D_LOSS, G_LOSS, TARGETS
from .base import Scheme
from .parts import refuse_tricks, require_loss

if TYPE_CHECKING:
    from ..gan import GAN


def pulling_away(embeddings: Tensor, eps: float = 1e-12) -> Tensor:
    """EBGAN's pulling-away term (Zhao et al. 2017, arXiv:1609.03126, Eq. 6) of a batch of embeddings ``(N, ...)``.

    Each embedding is flattened and normalised on its own (not along the batch), and the
    squared cosines of the N(N-1) ordered pairs i ≠ j are averaged: 0 for mutually
    orthogonal embeddings, 1 when all are parallel or anti-parallel.
    """
    s = embeddings.flatten(1)
    n = s.shape[0]
    if n < 2:
        raise ValueError("the pulling-away term needs a batch of at least 2 samples")
    unit = s / s.norm(dim=1, keepdim=True).clamp_min(eps)
    cos = unit @ unit.T
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=s.device)
    return cos[off_diagonal].pow(2).sum() / (n * (n - 1))


def margin_loss(real_energy: Tensor, fake_energy: Tensor, margin: float) -> Tensor:
    """EBGAN's D loss (Zhao et al. 2017, arXiv:1609.03126, Eq. 1): E[D(x)] + E[max(0, m - D(G(z)))]."""
    return real_energy.mean() + F.relu(margin - fake_energy).mean()


def ebgan_g_loss(fake_energy: Tensor, fake_embedding: Tensor, pt_weight: float) -> Tensor:
    """EBGAN-PT's G loss (Zhao et al. 2017, arXiv:1609.03126, Eq. 2 and 6): E[D(G(z))] + λ_PT·f_PT(S)."""
    return fake_energy.mean() + pt_weight * pulling_away(fake_embedding)


def energy_and_embedding(D: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample reconstruction MSE of the auto-encoder ``D`` (EBGAN's energy, Zhao et al. 2017,
    arXiv:1609.03126, §2.3) and the encoder's embedding."""
    h = D.encode(x)
    return per_sample_mse(D.decode(h), x), h


@schemes.register("ebgan", paper="Zhao et al. 2017, arXiv:1609.03126, Eq. 1-2, 6",
                  summary="auto-encoder D with energy = reconstruction MSE, margin loss, pulling-away term for G")
class EBGAN(Scheme):
    """EBGAN-PT.

    Args:
        margin: m of D's hinge on fake energies (data-scale dependent).
        pt_weight: λ_PT of the pulling-away term in G's loss (paper: 0.1; 0 turns it off).
    """

    name = "ebgan"

    def __init__(self, margin: float = 0.25, pt_weight: float = 0.1):
        if not margin > 0:
            raise ConfigError(f"scheme 'ebgan': margin must be positive, got {margin}")
        if not pt_weight >= 0:
            raise ConfigError(f"scheme 'ebgan': pt_weight must be >= 0, got {pt_weight}")
        self.margin, self.pt_weight = margin, pt_weight

    own_loss = True                # its margin loss replaces the loss setting (a bench cell leaves that at its default)

    # built-in nets whose D gives logits, which have no energy
    LOGIT_NETS = ("mlp", "dcgan", "resnet-sn")

    def net_spec(self, role: str, spec: Spec) -> Spec:
        # a logit D becomes the auto-encoder (MLP for vectors, convs for images) of the same width
        # (and depth, activation where given)
        if role == "discriminator" and spec.name in self.LOGIT_NETS:
            kept = {k: v for k, v in spec.options.items() if k in ("width", "depth", "activation")}
            return Spec("autoencoder", kept)
        return spec

    def validate(self, gan: "GAN") -> None:
        D = gan.D
        if not (callable(getattr(D, "encode", None)) and callable(getattr(D, "decode", None))):
            raise ConfigError("scheme 'ebgan' needs an auto-encoder discriminator with encode(x) and decode(h) "
                              "methods; use the 'autoencoder' net (--discriminator autoencoder) or add them to yours")
        require_loss(gan, self.name, ("nonsaturating",), "has its own margin loss, so the loss setting would be "
                     "ignored; leave it at the default")
        refuse_tricks(gan, self.name, (TARGETS, D_LOSS, G_LOSS), "EBGAN's D outputs energies, not logits")

    def step(self, gan: "GAN", next_real: Callable[[], Tensor]) -> dict[str, Tensor]:
        logs: dict[str, Tensor] = {}
        for _ in range(gan.n_critic):
            real = next_real()
            real_in, fake_in = gan.d_inputs(real, gan.generate(real.shape[0]).detach(), "D")
            e_real, _ = energy_and_embedding(gan.D, real_in)
            e_fake, _ = energy_and_embedding(gan.D, fake_in)
            d_loss = margin_loss(e_real, e_fake, self.margin)
            gan.update("D", d_loss, logs)
        with gan.frozen("D"):
            _, fake_in = gan.d_inputs(None, gan.generate(real.shape[0]), "G")
            e_gen, embedding = energy_and_embedding(gan.D, fake_in)
            g_loss = ebgan_g_loss(e_gen, embedding, self.pt_weight)
            gan.update("G", g_loss, logs)
        logs.update(d_loss=d_loss.detach(), g_loss=g_loss.detach(), energy_real=e_real.detach().mean(),
                    energy_fake=e_fake.detach().mean(), energy_gen=e_gen.detach().mean(),
                    pulling_away=pulling_away(embedding.detach()))
        return logs
