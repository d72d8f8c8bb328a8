"""Layers and stateful helpers, for your own models and training loop.

The layers the tricks insert into D, the function that spectral-normalises a model, the EMA
update of G's weights and the replay buffer of past fakes: the same classes and functions
the tricks use. Each docstring names its paper. The pure functions are in :mod:`gantricks.functional`.

>>> from gantricks.nn import MinibatchStdDev, apply_spectral_norm, ema_update
>>> apply_spectral_norm(D)                          # every Linear/Conv of D, in place
>>> ema_update(G_ema, G, decay=0.999)                # after each G step
"""
from __future__ import annotations

from .conditional import (ACGANDiscriminator, ConcatDiscriminator, ConditionalBatchNorm, ConditionalGenerator,
                          ProjectionDiscriminator)
from .tricks.ema import ema_update
from .tricks.g_dropout import insert_dropout
from .tricks.minibatch_discrimination import MinibatchDiscrimination
from .tricks.minibatch_stddev import MinibatchStdDev
from .tricks.replay import ReplayBuffer
from .tricks.spectral_norm import apply_spectral_norm
from .tricks.virtual_batch_norm import ReferenceBatchGenerator, VirtualBatchNorm, use_virtual_batch_norm

__all__ = ["MinibatchDiscrimination", "MinibatchStdDev", "apply_spectral_norm", "ema_update", "ReplayBuffer",
           "ConditionalGenerator", "ConditionalBatchNorm", "ConcatDiscriminator", "ProjectionDiscriminator",
           "ACGANDiscriminator", "VirtualBatchNorm", "ReferenceBatchGenerator", "use_virtual_batch_norm",
           "insert_dropout"]
