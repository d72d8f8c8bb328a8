"""Metrics of a class-conditional GAN: are the samples of the class asked for, and how varied is each class?

* ``class_accuracy``: the share of samples that the project's digit classifier
  (:mod:`gantricks.metrics.classifier`, 98.1 % on held-out digits) assigns to the label G was asked for
  (AC-GAN's "sample accuracy", Odena et al. 2017, §4.1, with our classifier in place of Inception).
* ``intra_fid``: the FID of each class against the real images of that class, averaged over the classes
  (Miyato & Koyama 2018, §5.1), in the classifier's features as the image FID here.
* ``within_class_diversity``: the mean distance between two samples of one class, in the same features,
  over that of two real images of the class, averaged over the classes (1: as varied as the data). AC-GAN's
  known failure, samples that are easy to classify and alike within a class (Shu 2017; Gong et al. 2019,
  arXiv:1907.02690, TAC-GAN), shows as a ratio below the other modes'.
* ``own_mode_pct`` (labelled mixtures): the share of samples within 3 std of their own label's mode.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import metrics

MIN_PER_CLASS = 20            # fewer samples of a class than this: no FID or diversity for that class


@metrics.register("class-accuracy", paper="Odena et al. 2017, arXiv:1610.09585, §4.1",
                  summary="share of conditional samples classified as the label they were asked for")
def class_accuracy(predicted: Tensor, requested: Tensor) -> float:
    """Share of ``predicted`` labels equal to the ``requested`` ones."""
    if predicted.shape != requested.shape or len(requested) == 0:
        raise ConfigError(f"class_accuracy needs two label tensors of one shape, got {tuple(predicted.shape)} "
                          f"and {tuple(requested.shape)}")
    return float((predicted.cpu() == requested.cpu()).float().mean())


def mean_pairwise_distance(x: Tensor) -> float:
    """Mean Euclidean distance over the pairs ``i != j`` of the rows of ``x`` ``(N, d)``."""
    n = len(x)
    if n < 2:
        raise ConfigError("mean_pairwise_distance needs at least 2 rows")
    d = torch.cdist(x.double(), x.double())
    return float(d.sum() / (n * (n - 1)))


def _per_class(real_f: Tensor, real_y: Tensor, fake_f: Tensor, fake_y: Tensor, num_classes: int):
    for k in range(num_classes):
        r, f = real_f[real_y == k], fake_f[fake_y == k]
        if len(r) >= MIN_PER_CLASS and len(f) >= MIN_PER_CLASS:
            yield k, r, f


@metrics.register("intra-fid", paper="Miyato & Koyama 2018, arXiv:1802.05637, §5.1",
                  summary="FID of each class against that class's real images, averaged over the classes")
def intra_fid(real_f: Tensor, real_y: Tensor, fake_f: Tensor, fake_y: Tensor, num_classes: int
              ) -> tuple[float, list[float | None]]:
    """(mean over the classes measured, per-class FID; None where a class has under ``MIN_PER_CLASS``
    samples on either side) of features ``(N, d)`` with labels ``(N,)``."""
    from .images import frechet_distance

    per: list[float | None] = [None] * num_classes
    for k, r, f in _per_class(real_f, real_y, fake_f, fake_y, num_classes):
        per[k] = frechet_distance(r, f)
    measured = [v for v in per if v is not None]
    return (sum(measured) / len(measured) if measured else float("nan")), per


@metrics.register("within-class-diversity", paper="Shu 2017; Gong et al. 2019, arXiv:1907.02690 (TAC-GAN)",
                  summary="mean distance between samples of one class over that of real images, class-averaged")
def within_class_diversity(real_f: Tensor, real_y: Tensor, fake_f: Tensor, fake_y: Tensor, num_classes: int
                           ) -> float:
    """Mean over the classes of ``mean_pairwise_distance(fakes of k) / mean_pairwise_distance(reals of k)``."""
    ratios = [mean_pairwise_distance(f) / mean_pairwise_distance(r)
              for _, r, f in _per_class(real_f, real_y, fake_f, fake_y, num_classes)]
    return sum(ratios) / len(ratios) if ratios else float("nan")


@metrics.register("own-mode", paper="ours (labelled mixtures)",
                  summary="% of conditional samples within 3 std of their own label's mode")
def own_mode_pct(samples: Tensor, labels: Tensor, centers: Tensor, std: float, quality_stds: float = 3.0) -> float:
    """100 · share of ``samples`` ``(N, d)`` closer than ``quality_stds`` · ``std`` to ``centers[labels]``."""
    samples, centers = samples.detach().cpu().double(), torch.as_tensor(centers).cpu().double()
    dist = (samples - centers[labels.cpu()]).norm(dim=1)
    return 100.0 * float((torch.isfinite(dist) & (dist < quality_stds * std)).double().mean())


def conditional_metrics(samples: Tensor, labels: Tensor, sampler, classifier=None, reference: int = 10_000
                        ) -> dict[str, Any]:
    """The metrics above that fit ``sampler``'s data, for ``samples`` made for ``labels``."""
    out: dict[str, Any] = {}
    num_classes = sampler.num_classes
    if sampler.centers is not None:
        out["own_mode_pct"] = own_mode_pct(samples.flatten(1), labels, sampler.centers, sampler.std)
        return out
    from .classifier import on_device
    from .images import extract_features, feature_space

    feature = feature_space(tuple(samples.shape[1:]), classifier)
    if feature is None:
        return out
    feature = on_device(feature, samples.device)
    samples = torch.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    fake_f = extract_features(feature, samples).cpu()
    if getattr(sampler, "digit_labels", False):
        digits = feature.labels(fake_f)
        from ..data.stacked import digits_class
        predicted = digits_class(digits, getattr(sampler, "label_channel", 0 if digits.shape[1] == 1 else -1))
        out["class_accuracy"] = class_accuracy(predicted, labels)
    size = len(sampler) if hasattr(sampler, "__len__") else reference
    real, real_y = sampler.labelled_reference(min(size, reference))
    real_f = extract_features(feature, real.to(samples.device)).cpu()
    mean, per = intra_fid(real_f, real_y, fake_f, labels.cpu(), num_classes)
    if any(v is not None for v in per):
        out["intra_fid"] = mean
        out["intra_fid_per_class"] = [None if v is None else round(v, 3) for v in per] if num_classes <= 100 else None
        out["within_class_diversity"] = within_class_diversity(real_f, real_y, fake_f, labels.cpu(), num_classes)
    return {k: v for k, v in out.items() if v is not None}
