"""Image metrics: FID and KID (computed by torchmetrics), precision/recall/density/coverage, and the
Stacked MNIST modes, in the feature space of our MNIST classifier or, given its weights, Inception.

* FID (Heusel et al. 2017, arXiv:1706.08500): ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2(Σ_r Σ_g)^½) of Gaussians
  fitted to real and generated features.
* KID (Bińkowski et al. 2018, arXiv:1801.01401): the unbiased MMD² with the kernel
  (x·y / d + 1)³, averaged over random subsets (mean and std reported).
* PRDC (Naeem et al. 2020): see :mod:`gantricks.metrics.prdc`.

Feature spaces: on 28x28 images, the 128 penultimate units of :func:`mnist_classifier`, per channel
and concatenated (C·128 features: 384 on Stacked MNIST), meaningful for digits. The numbers are on
our scale, not comparable with published Inception FIDs. Inception-v3 features (2,048, pool3) are
used only when ``inception_weights`` names a weights file (torch-fidelity's
``pt_inception-2015-12-05`` file; needs ``pip install torch-fidelity``): nothing is downloaded.

Features are extracted once per image set and fed to torchmetrics' FID and KID through a
pass-through feature module, and to PRDC and the mode count, so an evaluation runs the
classifier once per image.
"""
from __future__ import annotations

import warnings
import weakref
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import metrics
from .classifier import mnist_classifier, on_device
from .prdc import prdc
from .stacked import classify_channels, mode_coverage


class DigitFeatures(nn.Module):
    """Images ``(B, C, 28, 28)`` in [-1, 1] -> the classifier's features of each channel, concatenated
    ``(B, C·128)``. Usable as torchmetrics' ``feature`` module; ``labels`` gives the channels' digits."""

    def __init__(self, classifier: nn.Module, channels: int):
        super().__init__()
        self.classifier, self.channels = classifier, channels
        self.num_features = channels * classifier.num_features

    def forward(self, x: Tensor) -> Tensor:
        b = len(x)
        return self.classifier.features(x.reshape(b * x.shape[1], 1, *x.shape[2:])).view(b, -1)

    def labels(self, features: Tensor) -> Tensor:
        """The digit of each channel, from features ``(B, C·128)`` -> ``(B, C)``."""
        per_channel = features.view(-1, self.classifier.num_features).to(self.classifier.head.weight)
        return self.classifier.head(per_channel).argmax(1).view(len(features), -1)


class PrecomputedFeatures(nn.Module):
    """The identity, with ``num_features``: hands features already extracted to torchmetrics."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        return x


class InceptionFeatures(nn.Module):
    """Inception-v3 pool3 features (2,048) of images in [-1, 1], grey images repeated to RGB."""

    num_features = 2048

    def __init__(self, weights_path: "str | Path"):
        super().__init__()
        path = Path(weights_path)
        if not path.is_file():
            raise ConfigError(f"Inception weights not found at {path}; give the path of torch-fidelity's "
                              f"pt_inception-2015-12-05 weights file (nothing is downloaded)")
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3
            self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                          feature_extractor_weights_path=str(path))
        except (ImportError, ModuleNotFoundError) as err:
            raise ConfigError(f"Inception features need torchmetrics and torch-fidelity: pip install torchmetrics "
                              f"torch-fidelity ({err})") from None

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[1] != 3:
            raise ConfigError(f"Inception features need 1 or 3 channels, got {x.shape[1]}")
        return self.net(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))


@torch.no_grad()
def extract_features(feature: nn.Module, images: Tensor, batch_size: int = 500) -> Tensor:
    """``feature`` over ``images`` in batches, in eval mode, without gradients."""
    feature.eval()
    return torch.cat([feature(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def _torchmetrics_image():
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance   # not torchmetrics.image: it hides
        from torchmetrics.image.kid import KernelInceptionDistance    # both unless torch-fidelity is installed
    except ImportError:
        raise ConfigError("FID and KID need torchmetrics: pip install 'gantricks[images]' "
                          "(or pip install torchmetrics)") from None
    return FrechetInceptionDistance, KernelInceptionDistance


@metrics.register("fid", paper="Heusel et al. 2017, arXiv:1706.08500",
                  summary="Fréchet distance between Gaussians fitted to real and generated features")
def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """FID between feature sets ``real`` (N, d) and ``fake`` (M, d), by torchmetrics."""
    fid_cls, _ = _torchmetrics_image()
    fid = fid_cls(feature=PrecomputedFeatures(real.shape[1]))
    fid.update(real.detach().cpu().double(), real=True)
    fid.update(fake.detach().cpu().double(), real=False)
    return float(fid.compute())


@metrics.register("kid", paper="Bińkowski et al. 2018, arXiv:1801.01401",
                  summary="kernel (polynomial MMD²) distance between real and generated features, over subsets")
def kernel_distance(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
                    ) -> tuple[float, float]:
    """KID mean and std over ``subsets`` random subsets of ``subset_size`` (at most the smaller set),
    by torchmetrics; the subsets come from ``seed``, not the caller's RNG."""
    _, kid_cls = _torchmetrics_image()
    size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        kid = kid_cls(feature=PrecomputedFeatures(real.shape[1]), subsets=subsets, subset_size=size)
    kid.update(real.detach().cpu().double(), real=True)
    kid.update(fake.detach().cpu().double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = kid.compute()
    return float(mean), float(std)


def feature_space(shape: tuple[int, ...], classifier: nn.Module | None = None,
                  inception_weights: "str | Path | None" = None) -> nn.Module | None:
    """The feature module for images of ``shape`` (C, H, W): Inception when its weights are given,
    the digit classifier's on 28x28 images, else None (no feature space to measure in)."""
    if inception_weights:
        return InceptionFeatures(inception_weights)
    if len(shape) == 3 and tuple(shape[1:]) == (28, 28):
        return DigitFeatures(classifier or mnist_classifier(), shape[0])
    return None


def image_metrics(samples: Tensor, real: Tensor | None, *, modes: bool = False, classifier: nn.Module | None = None,
                  inception_weights: "str | Path | None" = None, real_features: Tensor | None = None,
                  kid_subsets: int = 20, prdc_k: int = 5, prdc_samples: int = 5000, batch_size: int = 500) -> dict:
    """FID, KID, precision/recall/density/coverage of ``samples`` against ``real`` images, and with
    ``modes`` the Stacked MNIST mode count (each channel labelled by the digit classifier).

    ``real_features``: the features of ``real``, if already extracted (then ``real`` is unused).
    ``kid_subsets`` subsets of up to 1,000 (torchmetrics' default is 100; 20 keeps an evaluation
    cheap and the std still says how noisy the mean is). PRDC on the first ``prdc_samples`` of each
    set (its cost grows with the square). An empty dict where there is no feature space.
    """
    shape = tuple(samples.shape[1:])
    if modes and shape[1:] != (28, 28):
        raise ConfigError(f"Stacked MNIST modes need 28x28 images, got {shape}")
    feature = feature_space(shape, classifier, inception_weights)
    out: dict = {}
    if feature is None:
        return out
    device = samples.device
    feature = on_device(feature, device)
    samples = torch.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)   # non-finite pixels: counted apart
    fake_f = extract_features(feature, samples, batch_size)
    real_f = extract_features(feature, real.to(device), batch_size) if real_features is None \
        else real_features.to(device)
    if modes:
        if isinstance(feature, DigitFeatures):
            digits = feature.labels(fake_f)
        else:
            digits = classify_channels(samples, on_device(classifier or mnist_classifier(), device))
        out.update(mode_coverage(digits))
    try:
        out["fid"] = frechet_distance(real_f, fake_f)
        out["kid"], out["kid_std"] = kernel_distance(real_f, fake_f, subsets=kid_subsets)
    except ConfigError as err:   # torchmetrics is an optional dependency
        warnings.warn(f"gantricks: no FID/KID: {err}", stacklevel=2)
    n = min(prdc_samples, len(real_f), len(fake_f))
    if n > prdc_k:
        out.update(prdc(real_f[:n], fake_f[:n], k=prdc_k))
    return out


_REFERENCE_FEATURES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def dataset_image_metrics(samples: Tensor, sampler, **options) -> dict:
    """:func:`image_metrics` of ``samples`` against ``sampler.reference(len(samples))``, with the mode
    count on Stacked MNIST. The reference's features are kept per sampler: a run's evaluations
    extract them once."""
    from ..data.stacked import StackedDigits

    feature = feature_space(tuple(samples.shape[1:]), options.get("classifier"), options.get("inception_weights"))
    if feature is None:
        return {}
    key = (len(samples), str(options.get("inception_weights")), id(options.get("classifier")))
    try:
        cache = _REFERENCE_FEATURES.setdefault(sampler, {})
    except TypeError:    # a sampler that cannot be weakly referenced or hashed: no reuse
        cache = {}
    if key not in cache:
        cache[key] = extract_features(on_device(feature, samples.device), sampler.reference(len(samples))
                                      .to(samples.device)).cpu()
    return image_metrics(samples, None, modes=isinstance(sampler, StackedDigits), real_features=cache[key],
                         **options)
