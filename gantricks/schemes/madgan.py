"""MAD-GAN: k generators, one D that also says which generator made a sample
(Ghosh et al. 2018, arXiv:1704.02906, §3).

D has k+1 softmax outputs: class i for samples of generator i, class k for real data.
With ``D_c`` the softmax probabilities (the paper's Eq. 2-3, classes counted from 0)::

    D maximises   E_x log D_k(x) + Σ_i E_z log D_i(G_i(z))
    G_i minimises E_z log(1 - D_k(G_i(z)))      (minimax)
               or -E_z log D_k(G_i(z))           (nonsaturating, the default)

To tell the generators apart, D must push them towards different modes. Optionally
(``diversity`` > 0) the generators' loss adds the mean cosine similarity between the
samples of different generators for the same noise, in the spirit of MAD-GAN-Sim
(Appendix B), which compares D's features through a margin; here it is the plain
cosine of the flattened samples, weighted by ``diversity``.

D is evaluated on each generator's batch on its own, so that a D with batch statistics
(batch norm, minibatch discrimination) cannot carry one generator's gradient into
another's: generator i is trained only through its own samples.

The extra generators are re-initialized copies of G, stored as ``gan.modules["G1"]``
... ``["G{k-1}"]`` (so checkpoints carry them); ``share`` > 0 makes them use G's first
``share`` weight layers (with the norm/activation modules up to the next weight layer)
instead of their own: the paper shares all but the last layers in its image
experiments. Sampling draws every sample from a generator chosen uniformly at random.

    gantricks train --data grid25 --scheme madgan:generators=4     # the mlp D gets 5 outputs
    gt.GAN(G, D_with_5_outputs, z_dim=2, scheme="madgan:generators=4,share=3")
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import Spec, nets, schemes
from ..tricks.base import D_INPUTS, D_LOSS, G_LOSS, TARGETS
from .base import Scheme
from .parts import refuse_tricks, reinitialized_copy, require_loss

if TYPE_CHECKING:
    from ..gan import GAN


def cross_generator_cosine(samples: Tensor, eps: float = 1e-12) -> Tensor:
    """Mean cosine similarity between different generators' samples for the same noise, a diversity term
    after MAD-GAN-Sim (Ghosh et al. 2018, arXiv:1704.02906, App. B).

    ``samples`` is ``(k, B, ...)``: generator i's sample for noise b at ``[i, b]``. Each
    sample is flattened; the mean runs over the k(k-1) ordered pairs i ≠ j and the batch.
    """
    k = samples.shape[0]
    if k < 2:
        raise ValueError("cross-generator similarity needs at least 2 generators")
    flat = samples.flatten(2)
    unit = flat / flat.norm(dim=2, keepdim=True).clamp_min(eps)
    cos = torch.einsum("ibd,jbd->ijb", unit, unit)
    off_diagonal = ~torch.eye(k, dtype=torch.bool, device=samples.device)
    return cos[off_diagonal].mean()


def madgan_d_loss(real_logits: Tensor, fake_logits: Sequence[Tensor]) -> Tensor:
    """D's (k+1)-way cross-entropy (Ghosh et al. 2018, arXiv:1704.02906, Eq. 2): class i for generator i's
    samples (``fake_logits[i]``, each (B, k+1)), class k for the real samples."""
    real_class = len(fake_logits)
    loss = F.cross_entropy(real_logits, torch.full((real_logits.shape[0],), real_class, device=real_logits.device))
    for i, logits in enumerate(fake_logits):
        loss = loss + F.cross_entropy(logits, torch.full((logits.shape[0],), i, device=logits.device))
    return loss


def madgan_g_loss(logits: Tensor, real_class: int, saturating: bool) -> Tensor:
    """G_i's adversarial loss from D's (B, k+1) logits on its samples (Ghosh et al. 2018, arXiv:1704.02906,
    Eq. 3): log(1 - D_k(G_i(z))) when ``saturating``, else -log D_k(G_i(z))."""
    if saturating:   # log(1 - D_k) = log Σ_{c≠k} softmax_c
        others = torch.cat([logits[:, :real_class], logits[:, real_class + 1:]], dim=1)
        return (others.logsumexp(1) - logits.logsumexp(1)).mean()
    return F.cross_entropy(logits, torch.full((logits.shape[0],), real_class, device=logits.device))


class _Borrowed(nn.Module):
    """Calls a module of another net without registering it, so its parameters are optimized once,
    by that net's optimizer, and checkpointed once, in that net's state."""

    def __init__(self, module: nn.Module):
        super().__init__()
        object.__setattr__(self, "target", module)

    def forward(self, *args, **kwargs):
        return self.target(*args, **kwargs)


def layer_sequence(G: nn.Module) -> nn.Sequential:
    """G's layers in order: G itself if an ``nn.Sequential``, else its only ``nn.Sequential`` child that
    holds all of its parameters (the built-in ``mlp`` generator's ``net``)."""
    if isinstance(G, nn.Sequential):
        return G
    n_params = sum(1 for _ in G.parameters())
    for child in G.children():
        if isinstance(child, nn.Sequential) and sum(1 for _ in child.parameters()) == n_params:
            return child
    raise ConfigError("scheme 'madgan' with share > 0 needs G to be an nn.Sequential (or to keep all its layers "
                      "in one nn.Sequential child); use share=0")


def share_first_layers(source: nn.Module, twin: nn.Module, share: int) -> None:
    """Make ``twin`` call ``source``'s modules for its first ``share`` weight layers (and what follows
    each of them up to the next weight layer)."""
    src, dst = layer_sequence(source), layer_sequence(twin)
    weights = [i for i, m in enumerate(src) if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    if share >= len(weights):
        raise ConfigError(f"scheme 'madgan': share={share}, but G has {len(weights)} weight layers and each "
                          f"generator needs its own last layer; use share <= {len(weights) - 1}")
    for i in range(weights[share]):
        dst[i] = _Borrowed(src[i])


def _choice(z: Tensor, k: int) -> Tensor:
    """A uniform generator index per sample, a deterministic function of the noise batch: seeded sampling
    is reproducible and the training RNG is not touched."""
    digest = hashlib.blake2b(z.detach().float().cpu().numpy().tobytes(), digest_size=8).digest()
    rng = torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2 ** 63 - 1))
    return torch.randint(k, (z.shape[0],), generator=rng).to(z.device)


@schemes.register("madgan", paper="Ghosh et al. 2018, arXiv:1704.02906, §3 (and App. B for diversity)",
                  summary="k generators; D has k+1 classes (which generator, or real)")
class MADGAN(Scheme):
    """Multi-agent diverse GAN.

    Args:
        generators: k, the number of generators (>= 2).
        share: leading weight layers of G the other generators share (0: independent generators).
        diversity: weight of the mean cosine similarity between generators' samples for the same noise.
    """

    name = "madgan"

    def __init__(self, generators: int = 4, share: int = 0, diversity: float = 0.0):
        if generators < 2:
            raise ConfigError(f"scheme 'madgan': generators must be >= 2, got {generators}")
        if share < 0:
            raise ConfigError(f"scheme 'madgan': share must be >= 0, got {share}")
        if not diversity >= 0:
            raise ConfigError(f"scheme 'madgan': diversity must be >= 0, got {diversity}")
        self.k, self.share, self.diversity = generators, share, diversity

    @property
    def names(self) -> list[str]:
        """The generators' names in ``gan.modules``; generator i is class i of D."""
        return ["G"] + [f"G{i}" for i in range(1, self.k)]

    def net_spec(self, role: str, spec: Spec) -> Spec:
        if role != "discriminator" or "outputs" not in nets.get(spec.name).options():
            return spec
        given = spec.options.get("outputs")
        if given is not None and int(given) != self.k + 1:
            raise ConfigError(f"scheme 'madgan' with {self.k} generators needs D with {self.k + 1} outputs, "
                              f"got outputs={given}")
        return Spec(spec.name, {**spec.options, "outputs": self.k + 1})

    def validate(self, gan: "GAN") -> None:
        require_loss(gan, self.name, ("nonsaturating", "minimax"), "trains D as a (k+1)-way softmax classifier")
        refuse_tricks(gan, self.name, (TARGETS, D_LOSS, G_LOSS, D_INPUTS),
                      "MAD-GAN's D is a (k+1)-way classifier, not a binary one")
        for trick in gan.tricks:
            if "sampling_generator" in dir(type(trick)):
                raise ConfigError(f"scheme 'madgan' cannot use trick {trick.name!r}: it keeps a copy of G alone, "
                                  f"but MAD-GAN samples from {self.k} generators")

    def setup(self, gan: "GAN") -> None:
        for name in self.names[1:]:
            twin = reinitialized_copy(gan.G, "the generator")
            if self.share:
                share_first_layers(gan.G, twin, self.share)
            gan.modules[name] = twin.to(gan.device)

    def generators(self, gan: "GAN") -> list[nn.Module]:
        return [gan.modules[n] for n in self.names]

    def _logits(self, D: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        logits = D(x)
        if logits.dim() != 2 or logits.shape[1] != self.k + 1:
            raise ConfigError(f"scheme 'madgan' with {self.k} generators needs D to output (B, {self.k + 1}) "
                              f"logits, got {tuple(logits.shape)}; build D with {self.k + 1} outputs")
        return logits

    def step(self, gan: "GAN", next_real: Callable[[], Tensor]) -> dict[str, Tensor]:
        logs: dict[str, Tensor] = {}
        gens, real_class = self.generators(gan), self.k
        for _ in range(gan.n_critic):
            real = next_real()
            z = gan.noise(real.shape[0])
            with torch.no_grad():
                fakes = [g(z) for g in gens]
            real_logits = self._logits(gan.D, real)
            fake_logits = [self._logits(gan.D, fake) for fake in fakes]
            d_loss = madgan_d_loss(real_logits, fake_logits)
            correct = [(logits.detach().argmax(1) == i).float().mean() for i, logits in enumerate(fake_logits)]
            gan.update("D", d_loss, logs)
        with gan.frozen("D"):
            z = gan.noise(real.shape[0])
            samples = [g(z) for g in gens]
            adv = sum(madgan_g_loss(self._logits(gan.D, x), real_class, gan.loss.name == "minimax")
                      for x in samples)
            similarity = cross_generator_cosine(torch.stack(samples))
            g_loss = adv + self.diversity * similarity if self.diversity else adv
            gan.update(self.names, g_loss, logs)
        logs.update(d_loss=d_loss.detach(), g_loss=g_loss.detach(), g_adv=adv.detach(),
                    generator_similarity=similarity.detach(),
                    d_acc_real=(real_logits.detach().argmax(1) == real_class).float().mean(),
                    d_acc_which=torch.stack(correct).mean())
        return logs

    def generate(self, gan: "GAN", z: Tensor) -> Tensor:
        """Each sample from a generator chosen uniformly (G may be an eval-mode copy: the others follow its mode)."""
        gens = self.generators(gan)
        which = _choice(z, self.k)
        mode = gens[0].training
        out = None
        for i, g in enumerate(gens):
            picked = (which == i).nonzero().squeeze(1)
            if picked.numel() == 0:
                continue
            was = g.training
            g.train(mode)
            try:
                x = g(z[picked])
            finally:
                g.train(was)
            if out is None:
                out = x.new_empty(z.shape[0], *x.shape[1:])
            out[picked] = x
        return out
