"""Networks, registered by name; each factory takes ``role`` ("generator" or "discriminator")."""
from . import mlp  # noqa: F401  (registers "mlp")
from .mlp import Maxout, MLPDiscriminator, MLPGenerator

__all__ = ["Maxout", "MLPGenerator", "MLPDiscriminator"]
