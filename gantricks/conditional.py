"""Class-conditional GANs: G(z, y) and D(x, y) for labelled data.

How D sees the label (``conditional`` = ``MODE[:key=value,...]``):

* ``concat`` — cGAN (Mirza & Osindero 2014, arXiv:1411.1784, §3.2): y, one-hot, is concatenated to
  D's input (as constant planes for images, as extra columns for vectors);
* ``projection`` — the projection discriminator (Miyato & Koyama 2018, arXiv:1802.05637, Eq. 3):
  ``D(x, y) = ψ(φ(x)) + ⟨embed(y), φ(x)⟩``, φ D's features, ψ its linear head;
* ``acgan`` — AC-GAN (Odena et al. 2017, arXiv:1610.09585, §3): D does not see y but has a class head
  beside its real/fake head; D minimises the class cross-entropy on real and fake batches, G on its
  fakes (both added to the adversarial losses with ``weight``).

How G sees it (option ``g``): ``embed`` concatenates a learned embedding of y to z (ganhacks: "use an
embedding layer"; MLP and conv nets), ``cbn`` swaps G's batch norms for conditional batch norm
(class-dependent gain and bias: de Vries et al. 2017, arXiv:1707.00683; Miyato & Koyama's G).

The nets here wrap the built-in ones (``gantricks train`` builds them); a user's own nets take
``G(z, y)`` and ``D(x, y)`` and hand ``conditional=`` and ``num_classes=`` to :class:`gantricks.GAN`.
An AC-GAN D returns ``(B, 1 + K)``: column 0 the adversarial logit, then K class logits.
"""
from __future__ import annotations

import inspect
import math
import typing
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError
from .registry import Spec, coerce_options

MODES = ("concat", "projection", "acgan")
G_MODES = ("embed", "cbn")
ONE_HOT_LIMIT = 64           # concat D: one-hot up to this many classes, a learned 64-d embedding above


class ConditionalSpec:
    """A parsed ``conditional`` setting: the D mode, G's conditioning, AC-GAN's weight."""

    def __init__(self, mode: str, g: str = "embed", weight: float = 1.0, embed_dim: int = 0):
        if mode not in MODES:
            raise ConfigError(f"unknown conditional {mode!r}; choose none or one of: {', '.join(MODES)}")
        if g not in G_MODES:
            raise ConfigError(f"conditional {mode!r}: g must be one of {', '.join(G_MODES)}, got {g!r}")
        if not (weight > 0 and math.isfinite(weight)):
            raise ConfigError(f"conditional {mode!r}: weight must be a positive number, got {weight}")
        if embed_dim < 0:
            raise ConfigError(f"conditional {mode!r}: embed_dim must be >= 0 (0: automatic), got {embed_dim}")
        self.mode, self.g, self.weight, self.embed_dim = mode, g, float(weight), int(embed_dim)

    @staticmethod
    def parse(value: "str | Spec | ConditionalSpec | None") -> "ConditionalSpec | None":
        """None for ``none`` (or None / ""), else the spec; a bad name or option is one line."""
        if value is None or isinstance(value, ConditionalSpec):
            return value
        if isinstance(value, str) and value.strip() in ("", "none"):
            return None
        spec = Spec.parse(value)
        if spec.name == "none":
            if spec.options:
                raise ConfigError("conditional 'none' takes no options")
            return None
        params = {k: p for k, p in inspect.signature(ConditionalSpec.__init__).parameters.items()
                  if k not in ("self", "mode")}
        hints = typing.get_type_hints(ConditionalSpec.__init__)
        params = {k: p.replace(annotation=hints[k]) for k, p in params.items()}
        return ConditionalSpec(spec.name, **coerce_options(f"conditional {spec.name!r}", params, spec.options))

    def __str__(self) -> str:
        return self.mode


# --- pure functions ------------------------------------------------------------------------------
def projection_logits(head_logits: Tensor, embedded_labels: Tensor, features: Tensor) -> Tensor:
    """The projection discriminator's output ``ψ(φ(x)) + ⟨embed(y), φ(x)⟩`` (Miyato & Koyama 2018,
    arXiv:1802.05637, Eq. 3): ``head_logits`` ``(B,)`` = ψ(φ(x)), ``embedded_labels`` and ``features``
    ``(B, F)``."""
    return head_logits + (embedded_labels * features).sum(1)


def acgan_class_loss(class_logits: Tensor, labels: Tensor) -> Tensor:
    """AC-GAN's class term: the cross-entropy ``-E[log P(C = y | x)]`` of the class head (Odena et al. 2017,
    arXiv:1610.09585, Eq. 2's L_C, with the sign that a loss minimises)."""
    return F.cross_entropy(class_logits.float(), labels)


def label_planes(x: Tensor, encoded: Tensor) -> Tensor:
    """``x`` with the label code ``encoded`` ``(B, E)`` appended: as E constant channels for ``(B, C, ...)``
    inputs of rank > 2, as E extra columns of the flattened input otherwise (cGAN's concatenation, Mirza &
    Osindero 2014, arXiv:1411.1784)."""
    if x.dim() > 2:
        planes = encoded.to(x.dtype).reshape(*encoded.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
        return torch.cat([x, planes], 1)
    return torch.cat([x.flatten(1), encoded.to(x.dtype)], 1)


def balanced_labels(n: int, num_classes: int) -> Tensor:
    """``0, 1, ..., K-1, 0, 1, ...``: ``n`` labels with every class as equally often as ``n`` allows."""
    return torch.arange(n) % num_classes


def check_labels(labels: "Tensor | list[int] | int", num_classes: int, n: int | None = None) -> Tensor:
    """Labels as a long tensor ``(n,)``; one label alone repeats ``n`` times, a shorter list cycles.
    :class:`ConfigError` for a label outside ``0..num_classes-1``."""
    y = torch.as_tensor(labels)
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise ConfigError(f"labels must be integers, got {labels!r}")
    y = y.long().reshape(-1)
    if len(y) == 0:
        raise ConfigError("labels: give at least one label")
    bad = y[(y < 0) | (y >= num_classes)]
    if len(bad):
        raise ConfigError(f"label {int(bad[0])} is outside the classes 0..{num_classes - 1}")
    if n is not None and len(y) != n:
        y = y.repeat(-(-n // len(y)))[:n]
    return y


# --- layers and nets ---------------------------------------------------------------------------------
class LabelEncoder(nn.Module):
    """y -> one-hot ``(B, K)`` for K <= ``one_hot_limit``, else a learned embedding ``(B, 64)``."""

    def __init__(self, num_classes: int, one_hot_limit: int = ONE_HOT_LIMIT):
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, one_hot_limit) if num_classes > one_hot_limit else None
        self.dim = num_classes if self.embed is None else one_hot_limit

    def forward(self, y: Tensor) -> Tensor:
        return F.one_hot(y, self.num_classes).float() if self.embed is None else self.embed(y)


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine map, then a class-dependent gain and bias (de Vries et al. 2017,
    arXiv:1707.00683; the conditional BN of Miyato & Koyama 2018's G): ``γ_y · BN(x) + β_y``, γ starting
    at 1, β at 0. The labels are set on the layer by :class:`ConditionalGenerator` before each forward."""

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm, num_classes: int):
        super().__init__()
        self.norm = type(norm)(norm.num_features, norm.eps, norm.momentum, affine=False,
                               track_running_stats=norm.track_running_stats)
        self.gain = nn.Embedding(num_classes, norm.num_features)
        self.bias = nn.Embedding(num_classes, norm.num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)
        self.labels: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.labels is None:
            raise ConfigError("a conditional batch norm ran without labels: call its generator as G(z, y)")
        shape = (len(x), -1, *([1] * (x.dim() - 2)))
        return self.gain(self.labels).view(shape) * self.norm(x) + self.bias(self.labels).view(shape)


class ConditionalGenerator(nn.Module):
    """G(z, y) from an unconditional G: ``embed`` feeds ``base`` the noise with an embedding of y
    concatenated (``base`` takes ``z_dim + embed_dim`` inputs; Mirza & Osindero 2014, with ganhacks'
    embedding layer); ``cbn`` swaps ``base``'s batch norms for :class:`ConditionalBatchNorm` (``base`` takes
    ``z_dim``; Miyato & Koyama 2018, arXiv:1802.05637)."""

    def __init__(self, base: nn.Module, num_classes: int, z_dim: int, mode: str = "embed", embed_dim: int = 0):
        super().__init__()
        self.base, self.num_classes, self.mode = base, num_classes, mode
        self.z_dim, self.z_shape = z_dim, (z_dim,)
        self.embed = nn.Embedding(num_classes, embed_dim) if mode == "embed" else None
        if mode == "cbn":
            norms = [(name, m) for name, m in base.named_modules()
                     if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            if not norms:
                raise ConfigError("conditional g=cbn needs a generator with batch norm; use g=embed, or a G "
                                  "built with batch_norm=true")
            for name, m in norms:
                _set_submodule(base, name, ConditionalBatchNorm(m, num_classes))

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        if self.embed is not None:
            return self.base(torch.cat([z.flatten(1), self.embed(y).to(z.dtype)], 1))
        layers = [m for m in self.base.modules() if isinstance(m, ConditionalBatchNorm)]
        for m in layers:
            m.labels = y
        try:
            return self.base(z)
        finally:
            for m in layers:
                m.labels = None


class ConcatDiscriminator(nn.Module):
    """cGAN's D (Mirza & Osindero 2014): ``base`` on x with y's code concatenated (:func:`label_planes`)."""

    def __init__(self, base: nn.Module, num_classes: int):
        super().__init__()
        self.base, self.encode = base, LabelEncoder(num_classes)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.base(label_planes(x, self.encode(y)))


def _features_and_head(base: nn.Module, what: str) -> None:
    if not (isinstance(getattr(base, "features", None), nn.Module) and isinstance(getattr(base, "head", None),
                                                                                   nn.Linear)):
        raise ConfigError(f"conditional {what!r} needs a discriminator with a `features` module and a linear "
                          f"`head` (the built-in nets have them); use conditional=concat for this D")


class ProjectionDiscriminator(nn.Module):
    """``D(x, y) = ψ(φ(x)) + ⟨embed(y), φ(x)⟩`` (Miyato & Koyama 2018, Eq. 3) over ``base.features`` (φ,
    flattened) and ``base.head`` (ψ, one output)."""

    def __init__(self, base: nn.Module, num_classes: int, feature_dim: int):
        super().__init__()
        _features_and_head(base, "projection")
        self.base = base
        self.embed = nn.Embedding(num_classes, feature_dim)
        nn.init.normal_(self.embed.weight, std=1.0 / math.sqrt(feature_dim))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = feature_vector(self.base, x)
        return projection_logits(self.base.head(h).squeeze(1), self.embed(y).to(h.dtype), h)


class ACGANDiscriminator(nn.Module):
    """AC-GAN's D (Odena et al. 2017): ``base``'s features feed its real/fake head and a class head;
    returns ``(B, 1 + K)`` (adversarial logit, then class logits). ``y`` is accepted and ignored."""

    def __init__(self, base: nn.Module, num_classes: int, feature_dim: int):
        super().__init__()
        _features_and_head(base, "acgan")
        self.base = base
        self.classes = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = feature_vector(self.base, x)
        return torch.cat([self.base.head(h), self.classes(h)], 1)


def feature_vector(base: nn.Module, x: Tensor) -> Tensor:
    """φ(x), what ``base.head`` reads: ``base.feature_vector(x)`` where the net has one (the MLP D flattens
    and scales its input first), else ``base.features(x)`` flattened."""
    fn = getattr(base, "feature_vector", None)
    return fn(x) if callable(fn) else base.features(x).flatten(1)


def feature_size(base: nn.Module, in_shape: tuple[int, ...]) -> int:
    """Width of ``base.features`` on one input of ``in_shape`` (a dry run, eval mode, no grad)."""
    was = base.training
    base.eval()
    try:
        with torch.no_grad():
            return int(feature_vector(base, torch.zeros(2, *in_shape)).shape[1])
    finally:
        base.train(was)


def conditional_nets(make_g: Callable[[int], nn.Module], make_d: Callable[[tuple[int, ...]], nn.Module],
                     spec: ConditionalSpec, num_classes: int, z_dim: int, data_shape: tuple[int, ...]
                     ) -> tuple[nn.Module, nn.Module]:
    """G(z, y) and D(x, y) from factories of the unconditional nets: ``make_g(z_in)`` a G taking ``z_in``
    noise inputs, ``make_d(in_shape)`` a D taking samples of ``in_shape``."""
    embed_dim = spec.embed_dim or min(num_classes, 50)
    G = ConditionalGenerator(make_g(z_dim + embed_dim if spec.g == "embed" else z_dim), num_classes, z_dim,
                             spec.g, embed_dim)
    if spec.mode == "concat":
        code = LabelEncoder(num_classes).dim
        d_shape = (data_shape[0] + code, *data_shape[1:]) if len(data_shape) > 1 else (math.prod(data_shape) + code,)
        return G, ConcatDiscriminator(make_d(d_shape), num_classes)
    base = make_d(tuple(data_shape))
    _features_and_head(base, spec.mode)
    if base.head.out_features != 1:
        raise ConfigError(f"conditional {spec.mode!r} needs a discriminator with one output, got "
                          f"{base.head.out_features}")
    cls = ProjectionDiscriminator if spec.mode == "projection" else ACGANDiscriminator
    return G, cls(base, num_classes, feature_size(base, tuple(data_shape)))


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


# --- the GAN's side: which labels a step's batches carry -----------------------------------------------
class Conditioning:
    """What :class:`gantricks.GAN` keeps for a conditional run: the mode, the number of classes, and the
    labels of the current real batch and of the last fakes G made (set by ``GAN`` as batches are drawn)."""

    def __init__(self, spec: ConditionalSpec, num_classes: int):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ConfigError(f"a conditional GAN needs labelled data of 2 or more classes (num_classes >= 2), "
                              f"got {num_classes!r}")
        self.spec, self.num_classes = spec, num_classes
        self.real_labels: Tensor | None = None
        self.fake_labels: Tensor | None = None

    @property
    def mode(self) -> str:
        return self.spec.mode

    def outputs(self, D: Callable[..., Tensor], x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor | None]:
        """(adversarial logits ``(B,)``, class logits ``(B, K)`` for AC-GAN else None) of D on ``x``."""
        if labels is None or len(labels) != len(x):
            raise ConfigError(f"a conditional D got a batch of {len(x)} with "
                              f"{'no' if labels is None else len(labels)} labels")
        out = D(x, labels)
        if self.mode != "acgan":
            return out, None
        return out[:, 0], out[:, 1:]

    def bind(self, D: Callable[..., Tensor], labels: Tensor) -> Callable[[Tensor], Tensor]:
        """D as a function of x alone, with ``labels`` (penalties and feature hooks call it): its
        adversarial logits."""
        def conditioned(x: Tensor) -> Tensor:
            return self.outputs(D, x, labels)[0]
        return conditioned

    def d_terms(self, real_classes: Tensor | None, fake_classes: Tensor | None) -> dict[str, Tensor]:
        if self.mode != "acgan":
            return {}
        return {"d_class": self.spec.weight * (acgan_class_loss(real_classes, self.real_labels)
                                               + acgan_class_loss(fake_classes, self.fake_labels))}

    def g_terms(self, fake_classes: Tensor | None) -> dict[str, Tensor]:
        if self.mode != "acgan":
            return {}
        return {"g_class": self.spec.weight * acgan_class_loss(fake_classes, self.fake_labels)}


CANNOT_CARRY_LABELS = {
    "pacgan": "it packs several samples into one D input, which has no single label",
    "replay": "its buffer keeps past fakes without the labels G made them for",
}


def refuse_unconditional_parts(gan) -> None:
    """:class:`ConfigError` for a scheme or trick a conditional GAN cannot compose with, checked at build."""
    from .schemes.standard import Standard

    if type(gan.scheme) is not Standard:
        raise ConfigError(f"a conditional GAN runs with the standard scheme only: scheme {gan.scheme.name!r} "
                          f"draws its own batches and fakes outside the labelled path (labels would not follow)")
    for trick in gan.tricks:
        why = CANNOT_CARRY_LABELS.get(trick.name)
        if why is None and hasattr(trick, "discriminator_input_shape"):
            why = "it changes the shape of D's inputs, which then carry no per-sample label"
        if why is None and trick.name == "feature-matching" and gan.conditioning.mode == "concat":
            why = ("a concat D's features depend on the label, and G's step would compare real features "
                   "under fake labels; use conditional=projection or acgan")
        if why is not None:
            raise ConfigError(f"conditional {gan.conditioning.mode!r} cannot use trick {trick.name!r}: {why}")
