"""Networks, registered by name; each factory takes ``role`` ("generator" or "discriminator")."""
from . import autoencoder, dcgan, mlp, patchgan, resnet_sn, unet  # noqa: F401  (registers the nets)
from .mlp import Maxout, MLPDiscriminator, MLPGenerator

__all__ = ["Maxout", "MLPGenerator", "MLPDiscriminator"]
