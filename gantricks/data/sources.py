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
    num_classes: int | None = None     # labelled data: the classes of ``labelled`` (None: no labels)
    digit_labels: bool = False         # labels are MNIST digits (or Stacked MNIST triples) the classifier reads

    def __call__(self, batch_size: int) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def labelled(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """A batch and its labels ``(B,)`` in ``0..num_classes-1``, for a conditional GAN."""
        raise ConfigError(f"a conditional run needs labelled data, and this dataset ({type(self).__name__}) has "
                          f"no labels; use mnist5k, mnist-idx, image-folder with one folder per class, "
                          f"stacked-mnist, ring8 or grid25")

    def labelled_reference(self, n: int) -> tuple[Tensor, Tensor]:
        """``n`` real examples and their labels for evaluation (the same examples as :meth:`reference`)."""
        return self.labelled(n)

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
        self.class_labels = labels if labels is not None and labels.dim() == 1 else None   # one class per example
        if self.class_labels is not None:
            self.class_labels = self.class_labels.long()
            if len(self.class_labels) != len(data) or (self.class_labels < 0).any():
                raise ConfigError(f"labels must be {len(data)} integers >= 0, one per example")
            self.num_classes = int(self.class_labels.max()) + 1
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
        return self.data[self._reference_index(n)]

    def _reference_index(self, n: int) -> Tensor:
        return torch.randperm(len(self.data), generator=torch.Generator().manual_seed(0))[:n]

    def labelled(self, batch_size: int) -> tuple[Tensor, Tensor]:
        if self.class_labels is None:
            return super().labelled(batch_size)
        idx = self.indices(batch_size)
        return self.data[idx], self.class_labels[idx]

    def labelled_reference(self, n: int) -> tuple[Tensor, Tensor]:
        if self.class_labels is None:
            return super().labelled(n)
        idx = self._reference_index(n)
        return self.reference(n), self.class_labels[idx]

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
