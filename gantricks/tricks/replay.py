"""Experience replay of generated samples (Shrivastava et al. 2017, arXiv:1612.07828, §2.3; ganhacks #13).

D's fake batch mixes G's current samples with samples G made earlier, so D keeps
penalising regions G has left and G cannot cycle back to them unpunished. In D's
step a ``fraction`` of the fake batch is swapped for random samples from a buffer
of ``size`` past fakes; then the fresh fakes enter the buffer (appended until it
is full, after that each step's fresh samples overwrite as many random entries as
were swapped, as in the paper). The buffer is part of the checkpoint.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import D_INPUTS, Trick
from .common import register_trick, require


def mix_in_replay(fake: Tensor, buffer: Tensor, count: int) -> Tensor:
    """``fake`` with ``count`` random positions replaced by random rows of ``buffer`` (Shrivastava et al. 2017,
    arXiv:1612.07828, §2.3)."""
    count = min(count, len(fake))
    if count == 0 or len(buffer) == 0:
        return fake
    positions = torch.randperm(len(fake), device=fake.device)[:count]
    picks = torch.randint(len(buffer), (count,), device=buffer.device)
    out = fake.clone()
    out[positions] = buffer[picks].to(fake)
    return out


def push(buffer: Tensor, fresh: Tensor, size: int, count: int) -> Tensor:
    """``buffer`` with ``fresh`` added: appended while there is room, else ``count`` random entries
    overwritten by ``count`` random fresh samples (Shrivastava et al. 2017, arXiv:1612.07828, §2.3)."""
    fresh = fresh.detach()
    room = size - len(buffer)
    if room > 0:
        return torch.cat([buffer, fresh[:room]])
    count = min(count, len(fresh))
    buffer = buffer.clone()
    buffer[torch.randperm(size, device=buffer.device)[:count]] = \
        fresh[torch.randperm(len(fresh), device=fresh.device)[:count]].to(buffer)
    return buffer


class ReplayBuffer:
    """A buffer of ``size`` past fakes; calling it on a fake batch swaps ``fraction`` of it for past samples,
    then stores the fresh ones (Shrivastava et al. 2017, arXiv:1612.07828, §2.3). State: ``buffer``."""

    def __init__(self, size: int = 1000, fraction: float = 0.5):
        require(size >= 1, f"trick 'replay': size must be >= 1, got {size}")
        require(0 < fraction <= 1, f"trick 'replay': fraction must be in (0, 1], got {fraction}")
        self.size, self.fraction = int(size), float(fraction)
        self.buffer: Tensor | None = None

    def __call__(self, fake: Tensor) -> Tensor:
        if self.buffer is None or self.buffer.shape[1:] != fake.shape[1:]:
            self.buffer = fake.detach()[:0].clone()
        self.buffer = self.buffer.to(fake.device)
        count = max(1, round(self.fraction * len(fake)))
        mixed = mix_in_replay(fake, self.buffer, count)
        self.buffer = push(self.buffer, fake, self.size, count)
        return mixed

    def state_dict(self) -> dict:
        return {} if self.buffer is None else {"buffer": self.buffer}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = state.get("buffer")


@register_trick("replay", paper="Shrivastava et al. 2017, arXiv:1612.07828, §2.3; ganhacks #13",
                summary="swap a fraction of D's fake batch for past generated samples from a buffer")
class Replay(Trick):
    """A :class:`ReplayBuffer` of ``size`` past fakes; ``fraction`` of each D fake batch comes from it."""

    touches = (D_INPUTS,)
    order = 20   # before packing and noise: swaps whole samples

    def __init__(self, size: int = 1000, fraction: float = 0.5):
        self.replay = ReplayBuffer(size, fraction)

    @property
    def buffer(self) -> Tensor | None:
        return self.replay.buffer

    def d_inputs(self, real: Tensor | None, fake: Tensor, gan, phase: str) -> tuple[Tensor | None, Tensor]:
        return (real, self.replay(fake)) if phase == "D" else (real, fake)

    def state_dict(self) -> dict:
        return self.replay.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.replay.load_state_dict(state)
