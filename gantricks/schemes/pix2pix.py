"""pix2pix: conditional GAN for paired image-to-image translation (Isola et al. 2017, arXiv:1611.07004).

G translates an input image A into B; a conditional D sees the pair (A, B) concatenated along
the channels, real (A, B) against fake (A, G(A)). With a PatchGAN D the adversarial loss is
the mean over the map of patch logits. The objective (Eq. 4)::

    G* = arg min_G max_D  L_cGAN(G, D) + λ · L_L1(G),     L_L1 = E ‖B - G(A)‖₁    (λ = 100)

As in the paper, G minimises the non-saturating -log D(A, G(A)) (any configured loss works),
and D's objective is halved "to slow down the rate at which D learns relative to G" (§3.3).
There is no noise input: G's dropout is its noise. L1 is the mean absolute error per pixel.

Batches are pairs ``(B, C_A + C_B, H, W)`` (``edges2mnist``, ``paired-folder``): the first
``in_channels`` channels (0: half) are A. With the builder's nets the default ``mlp`` G and D
become ``unet`` and ``patchgan`` (n_layers=3); give ``--discriminator patchgan:n_layers=1`` etc.
Samples (``gan.sample``) are pairs (A, G(A)) with A from the latest training batches, so the
run loop's evaluation sees tensors shaped like the data; held-out metrics come from
:func:`gantricks.translation.evaluate_translation`.

    gantricks train --data edges2mnist --scheme pix2pix:l1=100 --discriminator patchgan:n_layers=1
    gt.GAN(unet, patch_d, z_dim=1, scheme="pix2pix:l1=100")
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import Spec, nets, schemes
from ..translation import split_pairs
from .base import Scheme

if TYPE_CHECKING:
    from ..gan import GAN


def l1_term(fake: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per pixel, E‖B - G(A)‖₁ / (pixels·channels)."""
    return (fake - target).abs().mean()


@schemes.register("pix2pix", paper="Isola et al. 2017, arXiv:1611.07004, Eq. 4",
                  summary="paired translation: G(A) -> B, conditional D on (A, B), G loss = adversarial + λ·L1")
class Pix2Pix(Scheme):
    """Conditional GAN with an L1 term.

    Args:
        l1: λ, the weight of the L1 term (paper: 100; 0: cGAN alone).
        in_channels: channels of the input A at the start of each pair (0: half of them).
        halve_d: halve D's loss as the paper does.
    """

    name = "pix2pix"
    takes_noise = False            # G translates inputs A; validate checks it on them
    paired_data = True             # it needs (A, B) pairs: not a cell of the unpaired benchmarks
    POOL = 64                      # inputs kept for gan.sample (and checkpoints: keep it small)

    def __init__(self, l1: float = 100.0, in_channels: int = 0, halve_d: bool = True):
        if not l1 >= 0:
            raise ConfigError(f"scheme 'pix2pix': l1 must be >= 0, got {l1}")
        if in_channels < 0:
            raise ConfigError(f"scheme 'pix2pix': in_channels must be >= 0, got {in_channels}")
        self.l1, self.in_channels, self.halve_d = float(l1), in_channels, halve_d
        self._inputs: Tensor | None = None

    def net_spec(self, role: str, spec: Spec) -> Spec:
        if spec.name == "mlp":      # the config's default nets: pix2pix's own
            spec = Spec("unet" if role == "generator" else "patchgan")
        if role == "generator" and "paired" in nets.get(spec.name).options():
            spec = Spec(spec.name, {**spec.options, "paired": True, "in_channels": self.in_channels})
        return spec

    def validate(self, gan: "GAN") -> None:
        shape = gan.data_shape
        if shape is not None:
            if len(shape) != 3 or shape[0] < 2:
                raise ConfigError(f"scheme 'pix2pix' trains on image pairs (C_A + C_B, H, W); the data has "
                                  f"samples of shape {shape}; use edges2mnist or paired-folder")
            a = self.in_channels or shape[0] // 2
            if not 0 < a < shape[0]:
                raise ConfigError(f"scheme 'pix2pix': in_channels={self.in_channels} leaves no target channels "
                                  f"in pairs of {shape[0]}")
            self._check_generator(gan, (a, *shape[1:]), (shape[0] - a, *shape[1:]))

    @staticmethod
    def _check_generator(gan: "GAN", in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
        """One dry forward (eval mode): G must map inputs A to images shaped like B."""
        G, was = gan.G, gan.G.training
        G.eval()
        try:
            with torch.no_grad():
                out_got = tuple(G(torch.zeros(1, *in_shape, device=gan.device)).shape[1:])
        except (RuntimeError, ConfigError) as err:
            out_got = str(err).splitlines()[0]
        finally:
            G.train(was)
        if out_got != out_shape:
            raise ConfigError(f"scheme 'pix2pix' needs G to translate inputs {in_shape} into targets {out_shape} "
                              f"(got {out_got}); use the unet net (--generator unet)")

    def split(self, pairs: Tensor) -> tuple[Tensor, Tensor]:
        return split_pairs(pairs, self.in_channels)

    def generator_objective(self, gan: "GAN", D: Callable[[Tensor], Tensor], inputs: Tensor, fake: Tensor,
                            target: Tensor, real_pairs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """L_cGAN (G side, with every trick's G terms) + λ·L1, on G's translations ``fake`` of ``inputs``."""
        adv, logs = gan.generator_loss(D, torch.cat([inputs, fake], dim=1), real_pairs)
        l1 = l1_term(fake, target)
        total = adv + self.l1 * l1
        return total, {**logs, "g_l1": l1.detach(), "g_loss": total.detach()}

    def step(self, gan: "GAN", next_real: Callable[[], Tensor]) -> dict[str, Tensor]:
        logs: dict[str, Tensor] = {}
        for _ in range(gan.n_critic):
            pairs = next_real()
            inputs, _ = self.split(pairs)
            with torch.no_grad():
                fake = gan.G(inputs)
            d_total, d_logs = gan.discriminator_loss(gan.D, pairs, torch.cat([inputs, fake], dim=1))
            gan.update("D", 0.5 * d_total if self.halve_d else d_total, logs)
            logs.update(d_logs)
        inputs, target = self.split(pairs)
        with gan.frozen("D"):
            fake = gan.G(inputs)
            g_total, g_logs = self.generator_objective(gan, gan.D, inputs, fake, target, pairs)
            gan.update("G", g_total, logs)
        logs.update(g_logs)
        self._inputs = torch.cat([inputs.detach(), self._inputs])[:self.POOL] if self._inputs is not None \
            else inputs.detach()[:self.POOL]
        return logs

    def state_dict(self) -> dict:
        return {} if self._inputs is None else {"inputs": self._inputs}

    def load_state_dict(self, state: dict) -> None:
        self._inputs = state.get("inputs")

    def generate(self, gan: "GAN", z: Tensor) -> Tensor:
        """Pairs (A, G(A)) for ``len(z)`` inputs A taken in turn from the latest training batches."""
        if self._inputs is None:
            raise ConfigError("scheme 'pix2pix' samples translations of training inputs; take a step first, "
                              "or call gantricks.translation.translate(G, inputs)")
        idx = torch.arange(len(z), device=self._inputs.device) % len(self._inputs)
        inputs = self._inputs[idx]
        return torch.cat([inputs, gan.sampling_generator(inputs)], dim=1)
