"""Training schemes, registered by name; each owns its step."""
from . import standard  # noqa: F401  (registers "standard")
from .base import Scheme

__all__ = ["Scheme"]
