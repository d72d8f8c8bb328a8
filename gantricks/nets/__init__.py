"""Networks, registered by name; each factory takes ``role`` ("generator" or "discriminator")."""
from . import autoencoder, dcgan, mlp, resnet_sn  # noqa: F401  (registers the nets)
from .mlp import Maxout, MLPDiscriminator, MLPGenerator

__all__ = ["Maxout", "MLPGenerator", "MLPDiscriminator"]
