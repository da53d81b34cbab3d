"""The `Dataset` every source returns, its fingerprint, the seeded stratified split and subsample all
sources share, and the check that a dataset held in memory fits."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..experiment.schema import ConfigError
from .image_files import ImageFiles

DEFAULT_VALIDATION_SPLIT = 0.2
MEMORY_SHARE = 0.8  # of the memory available now that a dataset held in memory may take


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux's MemAvailable; None where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(n_images: int, size: tuple[int, int], what: str) -> None:
    """A dataset held in memory must fit: exit 2 with the estimate before anything is allocated."""
    need = decoded_bytes(n_images, size)
    have = available_memory()
    if have is not None and need > MEMORY_SHARE * have:
        gib = 1024 ** 3
        raise ConfigError(
            f"{what}: {n_images} images of {size[0]}x{size[1]} take about {need / gib:.1f} GiB decoded "
            f"(x 3 channels x 4 bytes), more than {MEMORY_SHARE:.0%} of the {have / gib:.1f} GiB of memory "
            f"available; use fewer samples or a smaller image_size (a folder dataset can also stream: "
            f"dataset.stream: true). Received: samples={n_images}, image_size={list(size)}")


def decoded_bytes(n_images: int, size: tuple[int, int]) -> int:
    """Memory the in-memory path needs for `n_images` RGB float32 images (what `stream: auto` compares)."""
    return int(n_images) * size[0] * size[1] * 3 * 4


@dataclass
class Dataset:
    """Train and validation arrays plus what a report needs to describe them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: tuple[str, ...]
    source: str
    fingerprint: str = ""
    warnings: list[str] = field(default_factory=list)
    validation_given: bool = False  # the data brings its own validation set (a folder's valid/, an official test split)
    # `resample.Pool` when each seed replicate draws its own split (`resample.replicate_data`); None: one split
    pool: Any = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def pipeline(self) -> str:
        """How batches reach the model (MLflow tag `data_pipeline`): `stream` from files or `memory`."""
        return "stream" if isinstance(self.x_train, ImageFiles) else "memory"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def describe(self) -> str:
        h, w, c = self.input_shape
        per = " per split, each seed replicate drawing its own" if self.pool is not None else ""
        return (f"{self.source}: {len(self.x_train)} train / {len(self.x_val)} validation images{per}, "
                f"{h}x{w}x{c}, {self.num_classes} classes")


def fingerprint(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' bytes, shapes and dtypes (identifies the exact data a run saw); streamed
    images count by their paths, sizes and modification times."""
    h = hashlib.sha256()
    for a in arrays:
        if isinstance(a, ImageFiles):
            h.update(a.identity().encode())
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def stratified_split(n: int, labels: np.ndarray, fraction: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of indices 0..n-1 into (train, validation); `fraction` held out, or a count."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    try:
        tr, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError:  # a class too small to stratify: fall back to a plain seeded split
        tr, va = train_test_split(idx, test_size=fraction, random_state=seed)
    return np.sort(tr), np.sort(va)


def take_rows(x, indices):
    """Rows `indices` of an array or of `ImageFiles`."""
    return x.subset(indices) if isinstance(x, ImageFiles) else x[indices]


def stratified_keep(labels: np.ndarray, n: int, seed: int, key: str, source: str, num_classes: int) -> np.ndarray:
    """Sorted indices of a stratified, seeded `n` of `labels` (`dataset.<key>`; all of them when n is all)."""
    have = len(labels)
    split = "training" if key == "train_samples" else "validation"
    if n > have:
        raise ConfigError(f"dataset.{key}: {n} asked, but the {split} split of {source} holds only {have} images")
    if n < num_classes:
        raise ConfigError(f"dataset.{key}: {n} is fewer than the {num_classes} classes")
    if n == have:
        return np.arange(have)
    # A count, not the fraction 1 - n/have: sklearn rounds a fraction's test size up, and 14 * (1 - 12/14)
    # is 2.0000000000000004 in floating point, which kept 11 of 12 asked.
    keep, _ = stratified_split(have, labels, have - n, seed)
    return keep


def subsample(ds: Dataset, train_n: int | None, val_n: int | None, seed: int) -> Dataset:
    """Keep a stratified, seeded `train_n` of the training images (`dataset.train_samples`: fewer images make
    a model overfit, the regime in which augmentation can help) and `val_n` of the validation images
    (`dataset.val_samples`: shorter evaluation). None keeps a split whole."""
    x_tr, y_tr, x_va, y_va = ds.x_train, ds.y_train, ds.x_val, ds.y_val
    if train_n is not None:  # seed + 1 / + 2: not the same draw as the split
        keep = stratified_keep(y_tr, train_n, seed + 1, "train_samples", ds.source, ds.num_classes)
        x_tr, y_tr = take_rows(x_tr, keep), y_tr[keep]
    if val_n is not None:
        keep = stratified_keep(y_va, val_n, seed + 2, "val_samples", ds.source, ds.num_classes)
        x_va, y_va = take_rows(x_va, keep), y_va[keep]
    if len(y_tr) == len(ds.y_train) and len(y_va) == len(ds.y_val):
        return ds
    return Dataset(x_tr, y_tr, x_va, y_va, ds.class_names, ds.source, warnings=list(ds.warnings))
