"""Pinned checksums of the arrays each source gives for a fixed experiment and seed: a refactor of the data
modules must not change which images a run trains and validates on (the values were computed on the code
before `training/data.py` was split and its two Fashion-MNIST subsamples became one)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from augsweep.experiment import ConfigError, DatasetConfig
from augsweep.training.data import fashion_mnist_dir, load_dataset


def digest(ds) -> str:
    """sha256 (first 16 hex digits) of the four arrays' shapes, dtypes and bytes, computed here rather
    than by the production `fingerprint`, so a change there cannot move both sides at once."""
    h = hashlib.sha256()
    for a in (ds.x_train, ds.y_train, ds.x_val, ds.y_val):
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


PINNED = [  # (case, config, seed, sha256 prefix, train images, validation images)
    ("digits", DatasetConfig("digits", (12, 12), train_samples=200, val_samples=100), 3, "bf36a32a3569b790", 200, 100),
    ("digits whole", DatasetConfig("digits", (8, 8), validation_split=0.25), 5, "ee2610b5ab9c3a11", 1347, 450),
    ("synthetic", DatasetConfig("synthetic", (16, 16), samples=150, classes=3, train_samples=60, val_samples=21), 7,
     "f201e40ba2f4af30", 60, 21),
]
FASHION = [
    ("fashion split", DatasetConfig("fashion_mnist", (14, 14), classes=(0, 3, 7), train_samples=300, val_samples=90),
     2, "c4e020fc53965f3b", 300, 90),
    ("fashion test", DatasetConfig("fashion_mnist", (28, 28), validation="test", train_samples=500, val_samples=100),
     4, "2d55fed720a0416b", 500, 100),
]


def _fashion_available() -> bool:
    try:
        fashion_mnist_dir(DatasetConfig("fashion_mnist", (28, 28)))
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("case,cfg,seed,want,n_train,n_val", PINNED, ids=[c[0] for c in PINNED])
def test_subsample_is_pinned(case, cfg, seed, want, n_train, n_val):
    ds = load_dataset(cfg, seed)
    assert (len(ds.y_train), len(ds.y_val)) == (n_train, n_val)
    assert digest(ds) == want, case


@pytest.mark.parametrize("case,cfg,seed,want,n_train,n_val", FASHION, ids=[c[0] for c in FASHION])
def test_fashion_subsample_is_pinned(case, cfg, seed, want, n_train, n_val):
    if not _fashion_available():
        pytest.skip("Fashion-MNIST is not installed (make data, or apt-get install dataset-fashion-mnist)")
    ds = load_dataset(cfg, seed)
    assert (len(ds.y_train), len(ds.y_val)) == (n_train, n_val)
    assert digest(ds) == want, case
