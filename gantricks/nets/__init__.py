"""Networks, registered by name; each factory takes ``role`` ("generator" or "discriminator")."""
from . import autoencoder, mlp  # noqa: F401  (registers "autoencoder", "mlp")
from .mlp import Maxout, MLPDiscriminator, MLPGenerator

__all__ = ["Maxout", "MLPGenerator", "MLPDiscriminator"]
