"""gantricks: GAN training tricks that keep training stable and free of mode collapse.

>>> import gantricks as gt
>>> gan = gt.GAN(generator=G, discriminator=D, z_dim=2, loss="hinge", tricks=["spectral-norm"])
>>> logs = gan.step(real)
"""
from . import data, losses, metrics, nets, optim, schemes, tricks  # noqa: F401  (registers components)
from .config import TrainConfig
from .errors import CheckpointError, ConfigError, GantricksError, NonFiniteError
from .gan import GAN
from .registry import ALL as _ALL
from .train import evaluate, open_run, train

__version__ = "0.1.0"


def _lister(kind: str):
    def list_kind() -> list[str]:
        return _ALL[kind].names()
    list_kind.__name__ = f"list_{kind}s"
    list_kind.__doc__ = f"Names of every registered {kind}."
    return list_kind


list_datasets, list_nets, list_losses, list_tricks, list_schemes, list_metrics, list_optimizers = (
    _lister(k) for k in ("dataset", "net", "loss", "trick", "scheme", "metric", "optimizer"))

__all__ = ["GAN", "TrainConfig", "train", "evaluate", "open_run", "GantricksError", "ConfigError",
           "CheckpointError", "NonFiniteError", "list_datasets", "list_nets", "list_losses", "list_tricks",
           "list_schemes", "list_metrics", "list_optimizers"]
