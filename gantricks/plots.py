"""Pictures people would rather look at than read: sample scatters and metric curves."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def scatter(samples, path: "str | Path", centers=None, title: str = "", limit: float | None = None) -> Path:
    """Samples as dots over the mode centres (crosses); 2D data only."""
    samples = np.asarray(samples, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=110)
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.35, color="#1f77b4", linewidths=0)
    return _finish_plane(fig, ax, centers, title, path, limit)


def _finish_plane(fig, ax, centers, title: str, path: "str | Path", limit: float | None = None) -> Path:
    """The mode centres as crosses, equal axes around them, the title; saved to ``path`` and closed."""
    if centers is not None:
        c = np.asarray(centers)
        ax.scatter(c[:, 0], c[:, 1], marker="x", s=30, color="#d62728", linewidths=1.2)
        lim = limit or float(np.abs(c).max()) * 1.5 + 0.2
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    _margins(fig, left=0.6, right=0.1, top=0.3 if title else 0.25, bottom=0.45)
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


FLAG_COLORS = {"mode-collapse": "#d62728", "discriminator-wins": "#9467bd", "divergence": "#000000",
               "oscillation": "#ff7f0e", "discriminator-overfits": "#8c564b"}


def curves(records: Sequence[dict], keys: Sequence[str], path: "str | Path", title: str = "",
           marks: Sequence[tuple[int, str]] = ()) -> Path:
    """Each key of ``records`` (dicts with a ``step``) against step, one panel per key;
    ``marks`` are (step, label) pairs drawn as vertical lines (the monitor's flags)."""
    keys = [k for k in keys if any(k in r for r in records)]
    fig, axes = plt.subplots(len(keys) or 1, 1, figsize=(6, 1.8 * max(len(keys), 1)), dpi=100, sharex=True,
                             squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        pts = [(r["step"], r[key]) for r in records if key in r and r[key] is not None]
        if pts:
            xs, ys = zip(*pts)
            # markers where the points are few: one evaluation is one point, which a bare line never draws
            ax.plot(xs, ys, lw=1, marker="o" if len(pts) <= 50 else None, ms=3)
        for step, label in marks:
            ax.axvline(step, color=FLAG_COLORS.get(label, "#7f7f7f"), lw=0.8, ls="--", label=label)
        ax.set_ylabel(key, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    if marks:
        handles, labels = axes[0, 0].get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        axes[0, 0].legend(unique.values(), unique.keys(), fontsize=7, loc="upper right")
    _margins(fig, top=0.3 if title else 0.25)
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _margins(fig, left: float = 0.8, right: float = 0.15, top: float = 0.3, bottom: float = 0.45) -> None:
    """Margins in inches, fixed: by default room for tick labels of up to seven characters (matplotlib writes
    longer numbers with an offset, drawn above the axes: ``top`` keeps room for it without a title), the y
    label, the title and the x label. A third cheaper than ``tight_layout``, which lays every figure out
    twice; the curves are drawn after every run of a bench."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h, hspace=0.2)


def overlaid(records: Sequence[dict], keys: Sequence[str], path: "str | Path", title: str = "",
             marks: Sequence[tuple[int, str]] = (), ylabel: str = "") -> Path:
    """The ``keys`` of ``records`` against step in one panel (curves to compare, e.g. D's output on
    training, held-out and fake images); ``marks`` as in :func:`curves`."""
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    for key in keys:
        pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, lw=1.2, marker="o", ms=3, label=key)
    for step, label in marks:
        ax.axvline(step, color=FLAG_COLORS.get(label, "#7f7f7f"), lw=0.8, ls="--", label=f"{label} @ {step}")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    _margins(fig, top=0.3 if title else 0.25)
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def grid_array(samples, nrow: int | None = None, value_range: tuple[float, float] = (-1.0, 1.0),
               pad: int = 2) -> np.ndarray:
    """Images ``(N, C, H, W)`` tiled into one ``(rows·(H+pad)+pad, cols·(W'+pad)+pad, 3)`` float array
    in [0, 1]: 3 channels as RGB, 1 as grey, any other count as its channels side by side in grey
    (W' = C·W). ``nrow`` images per row (default: a square)."""
    x = np.asarray(samples.detach().cpu() if hasattr(samples, "detach") else samples, dtype=np.float64)
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"image_grid needs images (N, C, H, W), got shape {x.shape}")
    lo, hi = value_range
    x = np.clip((np.nan_to_num(x, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    n, c, h, w = x.shape
    if c == 3:
        tiles = x.transpose(0, 2, 3, 1)
    else:   # grey: channels next to each other
        tiles = np.repeat(x.transpose(0, 2, 1, 3).reshape(n, h, c * w)[..., None], 3, axis=3)
    cols = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    th, tw = tiles.shape[1:3]
    grid = np.ones((rows * (th + pad) + pad, cols * (tw + pad) + pad, 3))
    for i, tile in enumerate(tiles):
        r, q = divmod(i, cols)
        grid[pad + r * (th + pad):pad + r * (th + pad) + th, pad + q * (tw + pad):pad + q * (tw + pad) + tw] = tile
    return grid


def image_grid(samples, path: "str | Path", nrow: int | None = None,
               value_range: tuple[float, float] = (-1.0, 1.0), scale: int = 2) -> Path:
    """Images ``(N, C, H, W)`` in ``value_range`` as one PNG grid (see :func:`grid_array`), each pixel
    drawn ``scale`` x ``scale``."""
    return save_grid(grid_array(samples, nrow, value_range), path, scale)


def save_grid(grid, path: "str | Path", scale: int = 2) -> Path:
    """A grid from :func:`grid_array` as a PNG, each pixel drawn ``scale`` x ``scale``."""
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    path = Path(path)
    plt.imsave(path, grid)
    return path


def paths(points, path: "str | Path", centers=None, title: str = "") -> Path:
    """2D paths ``(B, steps, 2)`` as lines with dots over the mode centres (an interpolation in z)."""
    points = np.asarray(points, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=110)
    for row in points:
        ax.plot(row[:, 0], row[:, 1], "-o", ms=2.5, lw=0.8, alpha=0.8)
    return _finish_plane(fig, ax, centers, title, path)
