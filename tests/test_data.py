"""Datasets: digits and synthetic arrays, and the folder loader on real PNG/JPEG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augsweep.config import ConfigError, DatasetConfig
from augsweep.data import load_dataset, make_synthetic


def write_images(folder: Path, n: int, colour, size=(20, 30), fmt="PNG", mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    for i in range(n):
        arr = np.clip(np.array(colour) + rng.integers(-20, 20, (*size, 3)), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr).convert(mode)
        img.save(folder / f"img{i}.{'jpg' if fmt == 'JPEG' else fmt.lower()}", fmt)


def test_digits_are_real_resized_and_split():
    ds = load_dataset(DatasetConfig("digits", (16, 16)), seed=0)
    assert ds.x_train.shape[1:] == (16, 16, 1) and ds.x_train.dtype == np.float32
    assert len(ds.x_train) + len(ds.x_val) == 1797 and ds.num_classes == 10
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert abs(len(ds.x_val) / 1797 - 0.2) < 0.01
    assert set(np.unique(ds.y_val)) == set(range(10))  # stratified


def test_synthetic_is_deterministic_and_balanced():
    a, ya = make_synthetic(60, (16, 24), 3, seed=5)
    b, yb = make_synthetic(60, (16, 24), 3, seed=5)
    c, _ = make_synthetic(60, (16, 24), 3, seed=6)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)
    assert a.shape == (60, 16, 24, 3) and np.bincount(ya).tolist() == [20, 20, 20]
    ds = load_dataset(DatasetConfig("synthetic", (16, 16), samples=100), seed=0)
    assert ds.class_names == ("car", "truck") and ds.fingerprint == load_dataset(
        DatasetConfig("synthetic", (16, 16), samples=100), seed=0).fingerprint


def test_folder_train_valid_layout(tmp_path):
    root = tmp_path / "car-or-truck"
    write_images(root / "train" / "Car", 5, (200, 30, 30))
    write_images(root / "train" / "Truck", 4, (30, 30, 200), fmt="JPEG")
    write_images(root / "valid" / "Car", 2, (200, 30, 30), fmt="JPEG")
    write_images(root / "valid" / "Truck", 3, (30, 30, 200))
    ds = load_dataset(DatasetConfig("folder", (12, 16), path=str(root)), seed=0)
    assert ds.class_names == ("Car", "Truck")
    assert ds.x_train.shape == (9, 12, 16, 3) and ds.x_val.shape == (5, 12, 16, 3)
    assert ds.y_train.tolist() == [0] * 5 + [1] * 4
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.x_train[0, ..., 0].mean() > ds.x_train[0, ..., 2].mean()  # red car stays red (RGB order)


def test_folder_single_split_and_modes(tmp_path):
    root = tmp_path / "flat"
    write_images(root / "a", 10, (250, 250, 250), mode="L")  # grayscale -> RGB
    write_images(root / "b", 10, (10, 10, 10), mode="RGBA")
    ds = load_dataset(DatasetConfig("folder", (8, 8), path=str(root), validation_split=0.3), seed=1)
    assert ds.x_train.shape[-1] == 3 and len(ds.x_train) == 14 and len(ds.x_val) == 6
    assert sorted(np.bincount(ds.y_val).tolist()) == [3, 3]


def test_folder_problems_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="dataset.path does not exist"):
        load_dataset(DatasetConfig("folder", (8, 8), path=str(tmp_path / "missing")), 0)
    one = tmp_path / "one"
    write_images(one / "train" / "only", 3, (1, 2, 3))
    with pytest.raises(ConfigError, match="at least 2 class folders"):
        load_dataset(DatasetConfig("folder", (8, 8), path=str(one)), 0)
    empty = tmp_path / "empty"
    write_images(empty / "train" / "x", 3, (1, 2, 3))
    (empty / "train" / "y").mkdir()
    with pytest.raises(ConfigError, match="class folder 'y' is empty"):
        load_dataset(DatasetConfig("folder", (8, 8), path=str(empty)), 0)
