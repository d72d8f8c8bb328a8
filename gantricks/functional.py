"""Every technique's per-step piece as a function, for your own training loop.

The losses, penalties, label rules and scheme losses that :class:`gantricks.GAN` composes, as
pure tensor functions: the tricks and schemes call these same functions, so a hand-written loop
that uses them computes what ``GAN.step`` computes. Each docstring names its paper and equation.
Stateful pieces and layers (EMA, spectral norm, replay buffer, minibatch layers) are in
:mod:`gantricks.nn`.

>>> from gantricks.functional import nonsaturating_g, r1_penalty, smooth_real_targets
>>> penalty, norms = r1_penalty(D, real)          # E‖∇D(x)‖², then scale by γ/2

Conventions: D-side losses take ``(real_logits, fake_logits, real_target, fake_target)`` and
G-side ones ``(fake_logits, real_target)`` (targets are per-sample tensors ``(B,)``, ignored by
the losses without labels); penalties take D as a callable and return ``(penalty, per-sample
gradient norms)`` before their weight.
"""
from __future__ import annotations

from .conditional import acgan_class_loss, label_planes, projection_logits
from .interpolate import interpolation_path, lerp, slerp
from .losses import (hinge_d, least_squares_d, least_squares_g, minimax_d, minimax_g, nonsaturating_g,
                     wasserstein_d, wasserstein_g)
from .schemes.ebgan import energy_and_embedding, ebgan_g_loss, pulling_away
from .schemes.ebgan import margin_loss as ebgan_d_loss
from .schemes.madgan import cross_generator_cosine, madgan_d_loss, madgan_g_loss
from .schemes.mrgan import mode_regularizers
from .schemes.unrolled import (adam_step, functional_discriminator, sgd_step, unrolled_discriminator,
                               unrolled_generator_loss)
from .tricks.ada import ada_augment, ada_p_update, draw_ada
from .tricks.consistency import bcr_terms, zcr_d_term, zcr_g_term
from .tricks.diffaugment import diff_augment, draw_diffaugment
from .tricks.dragan import dragan_penalty, dragan_points
from .tricks.feature_matching import feature_matching_loss
from .tricks.historical_averaging import historical_average_penalty, update_running_mean
from .tricks.instance_noise import add_instance_noise, noise_std as instance_noise_std
from .tricks.label_flip import flip_targets
from .tricks.lecam import lecam_penalty
from .tricks.label_smoothing import smooth_real_targets
from .tricks.minibatch_discrimination import minibatch_features
from .tricks.minibatch_stddev import minibatch_stddev
from .tricks.noisy_labels import uniform_targets
from .tricks.pacgan import pack
from .tricks.r1 import r1_penalty, r2_penalty
from .tricks.virtual_batch_norm import virtual_batch_stats
from .tricks.wgan_gp import wgan_gp_penalty

__all__ = [
    # losses over D's logits
    "minimax_d", "minimax_g", "nonsaturating_g", "wasserstein_d", "wasserstein_g", "hinge_d",
    "least_squares_d", "least_squares_g",
    # gradient penalties on D
    "wgan_gp_penalty", "dragan_penalty", "dragan_points", "r1_penalty", "r2_penalty",
    # D's targets
    "smooth_real_targets", "uniform_targets", "flip_targets",
    # D's inputs
    "add_instance_noise", "instance_noise_std", "pack",
    # augmentation of D's inputs (little data)
    "diff_augment", "draw_diffaugment", "ada_augment", "draw_ada", "ada_p_update",
    # consistency and LeCam terms of D (and zCR's of G)
    "bcr_terms", "zcr_d_term", "zcr_g_term", "lecam_penalty",
    # G's loss terms
    "feature_matching_loss",
    # batch statistics
    "minibatch_stddev", "minibatch_features",
    # EBGAN, MAD-GAN, MRGAN
    "ebgan_d_loss", "ebgan_g_loss", "pulling_away", "energy_and_embedding",
    "madgan_d_loss", "madgan_g_loss", "cross_generator_cosine", "mode_regularizers",
    # Unrolled GAN
    "unrolled_discriminator", "unrolled_generator_loss", "functional_discriminator", "adam_step", "sgd_step",
    # conditional GANs: projection D, AC-GAN's class term, cGAN's input concatenation
    "projection_logits", "acgan_class_loss", "label_planes",
    # Salimans et al. 2016: historical averaging, virtual batch norm's statistics
    "historical_average_penalty", "update_running_mean", "virtual_batch_stats",
    # paths in the noise space
    "slerp", "lerp", "interpolation_path",
]
