"""Metrics: pure functions, registered by name."""
from .images import frechet_distance, image_metrics, kernel_distance
from .conditional import class_accuracy, intra_fid, own_mode_pct, within_class_diversity
from .mixture import mixture_coverage
from .prdc import prdc
from .stacked import stacked_mnist_modes

__all__ = ["mixture_coverage", "stacked_mnist_modes", "image_metrics", "frechet_distance", "kernel_distance",
           "prdc", "class_accuracy", "intra_fid", "within_class_diversity", "own_mode_pct"]
