"""matplotlib figures written as PNG (deterministic bytes: no timestamps, fixed metadata)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PNG_METADATA = {"Software": None}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path) -> Path:
    """Write a figure as PNG and close it."""
    path = Path(path)
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    _plt().close(fig)
    return path


def learning_curves(history: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """The course's two plots: loss/val_loss and accuracy/val_accuracy by epoch (one line per repeat)."""
    plt = _plt()
    acc = next((c for c in ("binary_accuracy", "accuracy") if c in history.columns), None)
    fig, axes = plt.subplots(1, 2 if acc else 1, figsize=(10 if acc else 5, 3.6), squeeze=False)
    groups = history.groupby("repeat") if "repeat" in history.columns else [(0, history)]
    for ax, (train_col, val_col) in zip(axes[0], [("loss", "val_loss"), (acc, f"val_{acc}")]):
        for i, (repeat, h) in enumerate(groups):
            x = h["epoch"] if "epoch" in h.columns else h.index
            suffix = f" r{repeat}" if "repeat" in history.columns else ""
            ax.plot(x, h[train_col], color="C0", alpha=1 - 0.3 * i, label=f"{train_col}{suffix}")
            ax.plot(x, h[val_col], color="C1", alpha=1 - 0.3 * i, label=f"{val_col}{suffix}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(train_col)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def image_grid(images: np.ndarray, path: str | Path, title: str = "", cols: int = 4) -> Path:
    """A grid of images in [0, 1] (the course's "Sixteen transformations of a single image")."""
    plt = _plt()
    rows = int(np.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.6 + (0.4 if title else 0)), squeeze=False)
    for ax, img in zip(axes.flat, images):
        img = np.clip(np.asarray(img, np.float32), 0, 1)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                  vmin=0, vmax=1)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, path)
