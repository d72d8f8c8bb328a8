"""Tricks: small objects with hooks around a training step (see :mod:`gantricks.tricks.base`)."""
from .base import StepContext, Trick

__all__ = ["StepContext", "Trick"]
