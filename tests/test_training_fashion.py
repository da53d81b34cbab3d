"""Fashion-MNIST: the IDX reader on small files the tests write (headers, subsets, stratification,
determinism, truncation), and the real dataset end to end when `make data` (or the Debian package) has it."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from augsweep.experiment import ConfigError, DatasetConfig
from augsweep.training.data import FASHION_DIRS, fashion_mnist_dir, load_dataset, read_idx
from tests.helpers import read_stores, run_in_process, sweep, tiny_experiment


def write_idx(path: Path, array: np.ndarray, zipped: bool = True, cut: int = 0) -> Path:
    """An IDX file (uint8) of `array`; `cut` drops that many bytes from the end."""
    header = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    raw = raw[: len(raw) - cut]
    path.write_bytes(gzip.compress(raw) if zipped else raw)
    return path


def fake_fashion(folder: Path, n_train: int = 200, n_test: int = 50, zipped: bool = True) -> Path:
    """IDX files in Fashion-MNIST's names: image i of label c has every pixel 10*c + i % 7 (recognisable)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = (10 * labels + np.arange(n) % 7)[:, None, None] * np.ones((1, 28, 28), np.uint8)
        suffix = ".gz" if zipped else ""
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images, zipped)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels, zipped)
    return folder


def cfg(folder, **kw) -> DatasetConfig:
    return DatasetConfig("fashion_mnist", kw.pop("image_size", (28, 28)), path=str(folder), **kw)


def test_idx_header_is_checked(tmp_path):
    good = write_idx(tmp_path / "a-idx3-ubyte", np.zeros((3, 4, 5)), zipped=False)
    assert read_idx(good, 3).shape == (3, 4, 5)
    with pytest.raises(ConfigError, match=r"not an IDX file with 1 dimensions.*make data"):
        read_idx(good, 1)
    (tmp_path / "junk").write_bytes(b"\x01\x02\x08\x03" + bytes(40))
    with pytest.raises(ConfigError, match=r"junk is not an IDX file"):
        read_idx(tmp_path / "junk", 3)
    short = write_idx(tmp_path / "b-idx3-ubyte.gz", np.zeros((3, 4, 5)), cut=7)
    with pytest.raises(ConfigError, match=r"b-idx3-ubyte.gz is truncated or padded: its header says 3x4x5 \(60 bytes"
                                          r" of data\), the file holds 53; fetch it again with `make data`"):
        read_idx(short, 3)
    (tmp_path / "c.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + bytes(100))[:-9])  # a cut gzip stream
    with pytest.raises(ConfigError, match=r"cannot read .*c.gz.*make data"):
        read_idx(tmp_path / "c.gz", 1)


def test_subset_relabels_in_the_listed_order(tmp_path):
    folder = fake_fashion(tmp_path / "f")
    ds = load_dataset(cfg(folder, classes=(7, 2), validation="test"), seed=0)
    assert ds.class_names == ("Sneaker", "Pullover") and ds.num_classes == 2
    assert ds.x_train.shape == (40, 28, 28, 1) and ds.x_val.shape == (10, 28, 28, 1)
    # Label 0 is class 7 (pixels 70..76), label 1 is class 2 (pixels 20..26): the relabelling kept the images.
    pixel = np.rint(ds.x_train[:, 0, 0, 0] * 255)
    assert set(pixel[ds.y_train == 0] // 10) == {7} and set(pixel[ds.y_train == 1] // 10) == {2}
    raw = fake_fashion(tmp_path / "raw", zipped=False)  # uncompressed files read the same
    np.testing.assert_array_equal(load_dataset(cfg(raw, classes=(7, 2), validation="test"), 0).x_train, ds.x_train)


def test_samples_are_stratified_seeded_and_resized(tmp_path):
    folder = fake_fashion(tmp_path / "f", n_train=400)
    c = cfg(folder, classes=(0, 1, 2, 3), train_samples=40, val_samples=20, image_size=(16, 12))
    a, b = load_dataset(c, seed=3), load_dataset(c, seed=3)
    assert a.x_train.shape == (40, 16, 12, 1) and a.x_val.shape == (20, 16, 12, 1)
    assert np.bincount(a.y_train).tolist() == [10] * 4 and np.bincount(a.y_val).tolist() == [5] * 4
    assert a.fingerprint == b.fingerprint
    other = load_dataset(c, seed=4)
    assert other.fingerprint != a.fingerprint and np.bincount(other.y_train).tolist() == [10] * 4
    with pytest.raises(ConfigError, match=r"dataset.val_samples: 500 asked, but the validation split of "
                                          r"fashion_mnist holds only 32 images"):
        load_dataset(cfg(folder, classes=(0, 1, 2, 3), val_samples=500), seed=0)


def test_missing_or_truncated_files_exit_2_naming_the_path_before_any_store(tmp_path, write_experiment):
    folder = fake_fashion(tmp_path / "f")
    images = folder / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(images.read_bytes())
    images.write_bytes(gzip.compress(raw[:-100]))
    exp = write_experiment(tiny_experiment(dataset={"source": "fashion_mnist", "image_size": [28, 28],
                                                    "path": str(folder), "classes": [0, 1]}))
    result = run_in_process("sweep.py", exp, "--mlruns", tmp_path / "mlruns")
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and str(images) in line and "make data" in line and "truncated" in line
    assert not (tmp_path / "mlruns").exists()
    with pytest.raises(ConfigError, match=r"no train-images-idx3-ubyte\[.gz\] in .*empty.*make data"):
        fashion_mnist_dir(cfg(tmp_path / "empty"))


def _real_fashion() -> Path | None:
    return next((d for d in FASHION_DIRS if (d / "train-images-idx3-ubyte.gz").is_file()), None)


@pytest.mark.skipif(_real_fashion() is None,
                    reason="Fashion-MNIST is not installed: run `make data` (CI does, through `make test`)")
def test_real_fashion_mnist_end_to_end(tmp_path, write_experiment):
    full = load_dataset(DatasetConfig("fashion_mnist", (28, 28), validation="test"), seed=0)
    assert len(full.x_train) == 60_000 and full.num_classes == 10
    assert len(full.x_val) == 10_000 and np.bincount(full.y_val).tolist() == [1000] * 10
    exp = write_experiment(tiny_experiment(
        dataset={"source": "fashion_mnist", "image_size": [28, 28], "classes": [5, 7], "train_samples": 128,
                 "val_samples": 64, "validation": "test"},
        trials=1))
    out = sweep(exp, tmp_path / "mlruns")
    assert out.finished == 1
    view = read_stores(exp, tmp_path / "mlruns")
    parent = next(r for r in view.runs if r.data.tags.get("kind") == "sweep")
    assert parent.data.params["train_images"] == "128" and parent.data.params["val_images"] == "64"
    assert parent.data.tags["data_pipeline"] == "memory"
    assert view.trials[0].value < 0.7  # sandals vs sneakers: better than chance (ln 2 = 0.69) after 2 epochs
