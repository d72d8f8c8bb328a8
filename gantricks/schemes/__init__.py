"""Training schemes, registered by name; each owns its step."""
from . import standard  # noqa: F401  (registers "standard")
from . import unrolled  # noqa: F401  (registers "unrolled", "lookahead")
from . import ebgan, madgan, mrgan  # noqa: F401  (register "ebgan", "madgan", "mrgan", "mdgan")
from . import pix2pix  # noqa: F401  (registers "pix2pix")
from .base import Scheme

__all__ = ["Scheme"]
