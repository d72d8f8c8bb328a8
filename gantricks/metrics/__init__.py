"""Metrics: pure functions, registered by name."""
from .mixture import mixture_coverage

__all__ = ["mixture_coverage"]
