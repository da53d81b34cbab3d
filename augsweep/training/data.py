"""Datasets -> float32 NHWC arrays in [0, 1] with a deterministic train/validation split: `load_dataset`, the
one entry point (memory check, the source's read, the one stratified subsample, cache and fingerprint).

Sources: `digits` and `synthetic` (`sources`), `fashion_mnist` (`fashion`: the IDX files), `folder` (`folder`:
Kaggle's Car-or-Truck layout, streamed as `image_files.ImageFiles` when too large for memory). Bad folders and
files are found before any training starts and reported as one `ConfigError` line. This module also keeps
the names callers import from `augsweep.training.data`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..experiment.schema import ConfigError, DatasetConfig
from . import resample
from .dataset import (
    DEFAULT_VALIDATION_SPLIT,
    MEMORY_SHARE,
    Dataset,
    available_memory,
    check_memory,
    decoded_bytes,
    fingerprint,
    stratified_keep,
    stratified_split,
    subsample,
    take_rows,
)
from .fashion import (
    FASHION_DIRS,
    FASHION_NAMES,
    FETCH,
    IDX_DTYPES,
    REPO_ROOT,
    fashion_mnist_dir,
    fashion_pixels,
    read_fashion_mnist,
    read_fashion_split,
    read_idx,
)
from .folder import MAX_LISTED, folder_state, load_folder, wants_stream
from .image_files import IMAGE_SUFFIXES, MAX_IMAGE_PIXELS, ImageFiles, read_image, shown_name
from .sources import SYNTHETIC_CLASSES, load_digits, load_synthetic, make_synthetic, resize_float

__all__ = ["DEFAULT_VALIDATION_SPLIT", "FASHION_DIRS", "FASHION_NAMES", "FETCH", "IDX_DTYPES", "IMAGE_SUFFIXES",
           "MAX_IMAGE_PIXELS", "MAX_LISTED", "MEMORY_SHARE", "REPO_ROOT", "SYNTHETIC_CLASSES", "Dataset", "ImageFiles",
           "Source", "SOURCES", "available_memory", "check_memory", "decoded_bytes", "fashion_mnist_dir",
           "fashion_pixels", "fingerprint", "folder_state", "load_dataset", "load_digits", "load_folder",
           "load_synthetic", "make_synthetic", "read_fashion_mnist", "read_fashion_split", "read_idx", "read_image",
           "resize_float", "shown_name", "stratified_keep", "stratified_split", "subsample", "take_rows",
           "wants_stream"]


@dataclass(frozen=True)
class Source:
    """How one `dataset.source` is read (`read(cfg, seed)`: both splits, before subsampling) and, where the read
    images are not yet the model's pixels, `pixels(ds, cfg)`: applied after subsampling, so that only the kept
    images are converted (Fashion-MNIST's 60,000 training images take about 11 GiB as float32 at 224x224)."""

    read: Callable[[DatasetConfig, int], Dataset]
    pixels: Callable[[Dataset, DatasetConfig], Dataset] | None = None


SOURCES = {"digits": Source(load_digits), "synthetic": Source(load_synthetic), "folder": Source(load_folder),
           "fashion_mnist": Source(read_fashion_mnist, fashion_pixels)}
_CACHE: dict[tuple, Dataset] = {}


def load_dataset(cfg: DatasetConfig, seed: int, file: str = "") -> Dataset:
    """Load (once per process) and fingerprint the dataset an experiment names (`file`: the experiment
    file, named in the message when a folder dataset's path does not exist). With `dataset.resample: replicate`
    it holds the pool each seed replicate draws its own split from (`resample.replicate_data`) and shows
    replicate 0's split."""
    if cfg.source == "folder" and cfg.path and not Path(cfg.path).exists():
        raise ConfigError(f"dataset.path does not exist. Received: path={cfg.path!r} "
                          f"(looked at {Path(cfg.path).resolve()}{'; ' + file if file else ''})")
    key = (cfg, seed, folder_state(cfg))
    if key not in _CACHE and cfg.source != "folder":  # a folder is checked once its files are counted
        n = {"synthetic": cfg.samples, "digits": 1797}.get(cfg.source)
        if cfg.source == "fashion_mnist":
            n = (cfg.train_samples or 60_000) + (cfg.val_samples or 10_000)
        if n is not None:
            check_memory(n, cfg.image_size, f"dataset ({cfg.source})")
    if key not in _CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            source = SOURCES[cfg.source]
            read = source.read(cfg, seed)
            pool = resample.pool_of(read, cfg, seed, source.pixels) if cfg.resample == "replicate" else None
            if pool is None:
                ds = subsample(read, cfg.train_samples, cfg.val_samples, seed)
                if source.pixels is not None:
                    ds = source.pixels(ds, cfg)
            del read
        if pool is not None:  # each seed replicate draws its own split from the pool (`resample.replicate_data`)
            if cfg.cache:
                pool.cached(cfg.cache)
            ds = resample.pooled(pool, cfg, seed)
        else:
            if cfg.cache and isinstance(ds.x_train, ImageFiles):
                ds.x_train = ds.x_train.cached(f"{cfg.cache}.train.npy")
                ds.x_val = ds.x_val.cached(f"{cfg.cache}.val.npy")
            ds.fingerprint = fingerprint(ds.x_train, ds.y_train, ds.x_val, ds.y_val)
        _CACHE.clear()  # one dataset per process is the common case; do not hoard memory
        _CACHE[key] = ds
    return _CACHE[key]

