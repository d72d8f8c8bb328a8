"""Is D memorising the training set? D's outputs on held-out real images against training images and fakes
(Karras et al. 2020, arXiv:2006.06676, §2, Fig. 1b-c).

A D that generalises scores held-out real images as it scores the training images. A D that overfits a
small training set scores them lower and lower, toward its scores of G's samples: Fig. 1 of Karras et al.
shows the held-out distribution sliding onto the fakes' before FID turns. The measure here is the share
of the training-fake gap that the held-out images have crossed,

    overfit = (E[D(x_train)] - E[D(x_heldout)]) / (E[D(x_train)] - E[D(G(z))]),

0 when D treats held-out images as training ones, 1 when it scores them as fakes (defined where D ranks
training images above fakes at all). D's raw outputs are read on un-augmented images, in training mode
(batch norm on each batch's statistics, as D saw its real and fake batches) with its running statistics
left as they were, one batch of ``batch_size`` images at a time.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn


def overfit_score(seen: "Tensor | float", heldout: "Tensor | float", fake: "Tensor | float") -> float | None:
    """(seen - heldout) / (seen - fake) of D's mean outputs; None where D does not rank training images
    above fakes (the share is then meaningless)."""
    seen, heldout, fake = float(seen), float(heldout), float(fake)
    return (seen - heldout) / (seen - fake) if seen > fake else None


@torch.no_grad()
def discriminator_scores(D: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 64) -> Tensor:
    """D's output per image ``(N,)`` (the mean where D gives several per image), in batches of ``batch_size``,
    in D's training mode with the running statistics of its norm layers put back afterwards."""
    from ..schemes.parts import running_stats_kept

    module = D if isinstance(D, nn.Module) else None
    kept = running_stats_kept(module) if module is not None else torch.no_grad()
    out = []
    with kept:
        for i in range(0, len(x), batch_size):
            logits = D(x[i:i + batch_size]).float()
            out.append(logits.flatten(1).mean(1) if logits.dim() > 1 else logits)
    return torch.cat(out)


def overfit_metrics(D: Callable[[Tensor], Tensor], seen: Tensor, heldout: Tensor, fake: Tensor,
                    batch_size: int = 64) -> dict[str, Any]:
    """D's mean outputs on training images (``d_seen``), held-out ones (``d_heldout``) and fakes (``d_fake_eval``),
    their ``d_overfit`` share (:func:`overfit_score`), and E[sign D] on the training and held-out images (ADA's
    r_t on un-augmented images)."""
    scores = {k: discriminator_scores(D, x, batch_size) for k, x in
              (("seen", seen), ("heldout", heldout), ("fake", fake))}
    means = {k: float(v.mean()) for k, v in scores.items()}
    return {"d_seen": means["seen"], "d_heldout": means["heldout"], "d_fake_eval": means["fake"],
            "d_overfit": overfit_score(means["seen"], means["heldout"], means["fake"]),
            "rt_seen": float(torch.sign(scores["seen"]).mean()), "rt_heldout": float(torch.sign(scores["heldout"]).mean())}


def gan_overfit_metrics(gan, sampler, samples: Tensor, batch_size: int = 64) -> dict[str, Any]:
    """:func:`overfit_metrics` of ``gan``'s D where ``sampler`` keeps held-out images (``mnist5k:n=N``,
    ``stacked-mnist:n=N``) and D scores single samples as real or fake; else nothing."""
    heldout = getattr(sampler, "heldout", None)
    if heldout is None or not hasattr(sampler, "seen") or not getattr(gan.scheme, "takes_noise", True):
        return {}
    if getattr(gan.scheme, "name", "") in ("ebgan", "madgan") or any(
            hasattr(t, "discriminator_input_shape") for t in gan.tricks):
        return {}      # energies, k+1 classes or packed inputs: no real/fake score of one image
    if getattr(gan, "conditioning", None) is not None:
        return {}      # a conditional D scores an image with its label; the held-out labels are not kept (yet)
    m = min(len(heldout), len(samples))
    device = samples.device
    return overfit_metrics(gan.D, sampler.seen(m).to(device), heldout[:m].to(device), samples[:m], batch_size)
