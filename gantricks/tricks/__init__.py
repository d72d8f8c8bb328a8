"""Tricks: small objects with hooks around a training step (see :mod:`gantricks.tricks.base`).

Each built-in trick lives in its own module and registers itself on import.
"""
from . import (ada, consistency, diffaugment, dragan, ema, feature_matching, g_dropout,  # noqa: F401
               historical_averaging, instance_noise, label_flip, label_smoothing, lecam, minibatch_discrimination,
               minibatch_stddev, noisy_labels, pacgan, r1, replay, spectral_norm, virtual_batch_norm, wgan_gp)
from .base import StepContext, Trick

__all__ = ["StepContext", "Trick"]
