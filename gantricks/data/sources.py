"""Turn whatever the user has (a tensor, a Dataset, a DataLoader, a function) into a sampler.

A :class:`Sampler` is called with a batch size and returns a batch; it has
``state_dict``/``load_state_dict`` so that a resumed run draws the same batches.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from ..errors import ConfigError


class Sampler:
    """Base class: ``sampler(batch_size) -> Tensor``. ``centers``/``std`` where modes are known."""

    centers: Tensor | None = None
    std: float | None = None

    def __call__(self, batch_size: int) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self(1).shape[1:])

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def reference(self, n: int) -> Tensor:
        """``n`` real examples for evaluation; where possible without touching the training RNG."""
        return self(n)


class FixedSet(Sampler):
    """A fixed set of examples, drawn in shuffled epochs without replacement."""

    def __init__(self, data: Tensor, generator: torch.Generator | None = None,
                 centers: Tensor | None = None, std: float | None = None, labels: Tensor | None = None):
        if not isinstance(data, Tensor) or data.dim() < 2 or len(data) == 0:
            raise ConfigError(f"training data must be a non-empty tensor of shape (N, ...), got "
                              f"{getattr(data, 'shape', type(data).__name__)}")
        if not torch.is_floating_point(data):
            data = data.float()
        if not torch.isfinite(data).all():
            raise ConfigError("training data contains NaN or inf")
        self.data = data
        self.labels = labels
        self.generator = generator or torch.Generator().manual_seed(0)
        self.centers, self.std = centers, std
        self._order = torch.randperm(len(data), generator=self.generator)
        self._pos = 0

    def __len__(self) -> int:
        return len(self.data)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    def indices(self, batch_size: int) -> Tensor:
        parts, need = [], batch_size
        while need > 0:
            if self._pos >= len(self._order):
                self._order = torch.randperm(len(self.data), generator=self.generator)
                self._pos = 0
            take = self._order[self._pos:self._pos + need]
            self._pos += len(take)
            need -= len(take)
            parts.append(take)
        return torch.cat(parts)

    def __call__(self, batch_size: int) -> Tensor:
        return self.data[self.indices(batch_size)]

    def reference(self, n: int) -> Tensor:
        idx = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(0))[:n]
        return self.data[idx]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self._order, "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._order, self._pos = state["order"], int(state["pos"])


class IterableSource(Sampler):
    """Batches from an iterable (a DataLoader); restarts it when exhausted.

    The batch size is the loader's; the requested size is ignored. Tuples
    ``(x, y)`` yield ``x``. Position in the loader is not checkpointed.
    """

    def __init__(self, iterable: Iterable):
        self.iterable = iterable
        self._it = iter(iterable)

    def __call__(self, batch_size: int) -> Tensor:
        try:
            batch = next(self._it)
        except StopIteration:
            self._it = iter(self.iterable)
            try:
                batch = next(self._it)
            except StopIteration:
                raise ConfigError("the data loader yields no batches") from None
        return _first_tensor(batch)


class FunctionSource(Sampler):
    """Batches from a user function ``f(batch_size) -> Tensor``."""

    def __init__(self, fn: Callable[[int], Tensor]):
        self.fn = fn

    def __call__(self, batch_size: int) -> Tensor:
        return _first_tensor(self.fn(batch_size))


def _first_tensor(batch: Any) -> Tensor:
    if isinstance(batch, (tuple, list)) and batch:
        batch = batch[0]
    if isinstance(batch, dict):
        batch = next(iter(batch.values()))
    if not isinstance(batch, Tensor):
        raise ConfigError(f"data batches must be tensors, got {type(batch).__name__}")
    return batch


def as_sampler(data: Any, seed: int = 0) -> Sampler:
    """A :class:`Sampler` from a sampler, tensor, Dataset, DataLoader or ``f(batch_size)``."""
    if isinstance(data, Sampler):
        return data
    if isinstance(data, Tensor):
        return FixedSet(data, torch.Generator().manual_seed(seed))
    if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        items = [_first_tensor(data[i]) if not isinstance(data[i], Tensor) else data[i] for i in range(len(data))]
        if not items:
            raise ConfigError("the dataset is empty")
        return FixedSet(torch.stack(items), torch.Generator().manual_seed(seed))
    if isinstance(data, Iterable):
        return IterableSource(data)
    if callable(data):
        return FunctionSource(data)
    raise ConfigError(f"cannot train on {type(data).__name__}; pass a tensor, Dataset, DataLoader or f(batch_size)")
