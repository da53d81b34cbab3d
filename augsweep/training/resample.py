"""A data split per seed replicate (`dataset.resample: replicate`): the verdict then covers how an augmentation's
effect varies from one random training/validation split of the dataset to another, not only from seed to seed.

The pool is what a source read, decoded once per process (`data.load_dataset`): every image a split may draw,
training and validation together, or only the training images where the data brings its own validation set
(Fashion-MNIST's official test split, a folder's `valid/`), which every replicate then validates on. Replicate
`index`'s data is an index selection from the pool: a stratified validation split and stratified `train_samples` /
`val_samples` subsamples, seeded by `seeding.split_seed(experiment seed, index)` alone. So every design point of a
replicate, and every retry of one, trains and validates on the same images (comparisons stay paired), a rerun or
`--reproduce` draws them again exactly, and the selections are cached per replicate (bounded), not redone per trial.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from ..experiment.schema import DatasetConfig, Experiment
from ..experiment.seeding import split_seed
from .dataset import DEFAULT_VALIDATION_SPLIT, Dataset, fingerprint, stratified_keep, stratified_split, take_rows
from .image_files import ImageFiles

PARAM = "split_r{}"  # MLflow param of a training run: which split its repeat trained on (`split_param`)
KEEP_REPLICATES = 16  # replicates' selections kept per process: a sweep's trials revisit the same R replicates
KEEP_BYTES = 1024**3  # ... and at most this much of their pixels beyond the pool's own size


@dataclass(eq=False)
class Pool:
    """The images replicates draw from, decoded once: `x`/`y` the drawable ones; `x_val`/`y_val` the given
    validation set (None: drawn per replicate); `pixels` the source's conversion, applied to drawn images only."""

    x: Any
    y: np.ndarray
    x_val: Any
    y_val: np.ndarray | None
    class_names: tuple[str, ...]
    source: str
    warnings: list[str]
    pixels: Callable[[Dataset, DatasetConfig], Dataset] | None = None
    fingerprint: str = ""
    drawn: OrderedDict = field(default_factory=OrderedDict, repr=False)

    @property
    def nbytes(self) -> int:
        return sum(_nbytes(a) for a in (self.x, self.x_val))

    def cached(self, path: str) -> None:
        """Streamed images backed by `.npy` files at `path.pool.npy` / `path.val.npy` (`dataset.cache`)."""
        if isinstance(self.x, ImageFiles):
            self.x = self.x.cached(f"{path}.pool.npy")
        if isinstance(self.x_val, ImageFiles):
            self.x_val = self.x_val.cached(f"{path}.val.npy")


def _nbytes(a) -> int:
    return 0 if a is None or isinstance(a, ImageFiles) else int(np.asarray(a).nbytes)


def _joined(a, b):
    """Rows of `a` then rows of `b` (arrays, or `ImageFiles` not yet cached)."""
    if isinstance(a, ImageFiles):
        return ImageFiles(a.paths + b.paths, a.size)
    return np.concatenate([a, b])


def pool_of(read: Dataset, cfg: DatasetConfig, seed: int, pixels=None) -> Pool | None:
    """The pool of a source's read (`read`: split by `seed`, not yet subsampled); None when a replicate would
    have nothing to draw (the validation set is given and every training image is used)."""
    if read.validation_given:
        if cfg.train_samples is None:
            return None
        x_val, y_val = read.x_val, read.y_val
        if cfg.val_samples is not None:  # a given validation set stays one set: cut once, as without resampling
            keep = stratified_keep(y_val, cfg.val_samples, seed + 2, "val_samples", read.source, read.num_classes)
            x_val, y_val = take_rows(x_val, keep), y_val[keep]
        pool = Pool(read.x_train, read.y_train, x_val, y_val, read.class_names, read.source, list(read.warnings),
                    pixels)
        pool.x_val = _converted(pool, x_val, y_val, cfg)  # once: every replicate validates on these pixels
        return pool
    # The read's own split is one permutation of the whole: joined back, it is the pool every replicate splits.
    return Pool(_joined(read.x_train, read.x_val), np.concatenate([read.y_train, read.y_val]), None, None,
                read.class_names, read.source, list(read.warnings), pixels)


def _converted(pool: Pool, x, y: np.ndarray, cfg: DatasetConfig):
    """Images `x` (labels `y`) of the pool as the model's pixels (`pool.pixels`; as read when it has none)."""
    if pool.pixels is None:
        return x
    return pool.pixels(Dataset(x, y, x[:0], y[:0], pool.class_names, pool.source), cfg).x_train


def replicate_rows(y: np.ndarray, cfg: DatasetConfig, seed: int, validation_given: bool, source: str = "",
                   num_classes: int = 2) -> tuple[np.ndarray, np.ndarray | None]:
    """(training rows, validation rows) of the pool labelled `y` for the split seeded by `seed`; validation rows
    None where the validation set is given. Stratified throughout, with `subsample`'s seed offsets."""
    n_classes = max(num_classes, 2)
    if validation_given:
        tr = np.arange(len(y))
        va = None
    else:
        tr, va = stratified_split(len(y), y, cfg.validation_split or DEFAULT_VALIDATION_SPLIT, seed)
    if cfg.train_samples is not None:
        tr = tr[stratified_keep(y[tr], cfg.train_samples, seed + 1, "train_samples", source, n_classes)]
    if va is not None and cfg.val_samples is not None:
        va = va[stratified_keep(y[va], cfg.val_samples, seed + 2, "val_samples", source, n_classes)]
    return tr, va


def _draw(pool: Pool, cfg: DatasetConfig, seed: int) -> Dataset:
    tr, va = replicate_rows(pool.y, cfg, seed, pool.x_val is not None, pool.source, len(pool.class_names))
    if va is None:
        x_va, y_va = pool.x_val, pool.y_val
    else:
        x_va, y_va = _converted(pool, take_rows(pool.x, va), pool.y[va], cfg), pool.y[va]
    x_tr = _converted(pool, take_rows(pool.x, tr), pool.y[tr], cfg)
    ds = Dataset(x_tr, pool.y[tr], x_va, y_va, pool.class_names, pool.source, warnings=list(pool.warnings),
                 validation_given=va is None)
    # The pool and the rows determine the replicate's images exactly, at no cost of hashing pixels again.
    h = hashlib.sha256(pool.fingerprint.encode())
    for rows in (tr, va):
        h.update(b"|" if rows is None else np.ascontiguousarray(rows, np.int64).tobytes())
    ds.fingerprint = h.hexdigest()
    return ds


def replicate_data(dataset: Dataset, exp: Experiment, index: int) -> Dataset:
    """The data seed replicate `index` trains and validates on (a sweep's b*R + r, an ablation's
    `seeding.ablation_index(r)`): its own draw from `dataset`'s pool when the experiment resamples, else `dataset`
    itself. Depends on the experiment's seed and dataset keys and on `index` only (never on the configuration or
    a retry); cached per replicate."""
    pool = dataset.pool
    if pool is None:
        return dataset
    key = (exp.dataset, exp.seed, int(index))
    if key in pool.drawn:
        pool.drawn.move_to_end(key)
        return pool.drawn[key]
    ds = _draw(pool, exp.dataset, split_seed(exp.seed, int(index)))
    pool.drawn[key] = ds
    budget = max(pool.nbytes, KEEP_BYTES)  # a given validation set is the pool's, shared: not counted per replicate
    while len(pool.drawn) > 1 and (len(pool.drawn) > KEEP_REPLICATES or sum(
            _nbytes(d.x_train) + (0 if d.x_val is pool.x_val else _nbytes(d.x_val)) for d in pool.drawn.values())
            > budget):
        pool.drawn.popitem(last=False)
    return ds


def pooled(pool: Pool, cfg: DatasetConfig, seed: int) -> Dataset:
    """The dataset `load_dataset` returns when each replicate draws its own split: replicate 0's images (what
    shapes, class counts, previews and the chance loss read), its pool attached, fingerprinted by the pool (the
    data every replicate draws from)."""
    pool.fingerprint = fingerprint(*(a for a in (pool.x, pool.y, pool.x_val, pool.y_val) if a is not None))
    first = _draw(pool, cfg, split_seed(seed, 0))
    pool.drawn[(cfg, seed, 0)] = first  # shared with the replicate's own draw, not held twice
    return replace(first, fingerprint=pool.fingerprint, pool=pool, warnings=list(pool.warnings))


def split_param(dataset: Dataset, exp: Experiment, index: int, position: int) -> dict[str, str]:
    """The MLflow param `split_r<position>` = `index=<replicate>,data=<fingerprint>`: which split the repeat at
    `position` of a run trained on (read back by `logged_split`); {} when the experiment has one split."""
    if dataset.pool is None:
        return {}
    data = replicate_data(dataset, exp, index)
    return {PARAM.format(position): f"index={int(index)},data={data.fingerprint[:16]}"}


def logged_split(params: dict, position: int) -> tuple[int, str] | None:
    """(replicate index, data fingerprint prefix) a run logged for its repeat at `position`; None for a run that
    trained on the experiment's one split (no param: also every run logged before splits were drawn)."""
    text = params.get(PARAM.format(position))
    if not text:
        return None
    parts = dict(kv.split("=", 1) for kv in text.split(","))
    return int(parts["index"]), parts["data"]
