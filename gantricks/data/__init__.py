"""Datasets: registered by name, and adapters for the user's own data."""
from . import images, mixtures, stacked  # noqa: F401  (registers ring8, grid25, mnist5k, stacked-mnist, ...)
from .images import load_mnist5k
from .mixtures import Mixture, grid_centers, ring_centers
from .sources import FixedSet, Sampler, as_sampler

__all__ = ["load_mnist5k", "Mixture", "FixedSet", "Sampler", "as_sampler", "ring_centers", "grid_centers"]
