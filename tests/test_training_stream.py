"""The streaming folder path: chosen by size, the same batches as the in-memory path for the same seed
(with and without a cache file), a corrupt file caught by the pre-scan, a sweep that streams."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from augsweep.experiment import ConfigError, DatasetConfig
from augsweep.training.data import ImageFiles, decoded_bytes, load_dataset
from augsweep.training.train import input_pipeline
from tests.helpers import read_stores, run_in_process, sweep, tiny_experiment
from tests.test_training_data import write_images


def folder(root, n=7):
    """Kaggle layout with odd sizes (so both paths resize) and both PNG and JPEG."""
    write_images(root / "train" / "car", n, (200, 30, 30), size=(20, 30))
    write_images(root / "train" / "truck", n, (30, 30, 200), size=(17, 13), fmt="JPEG")
    write_images(root / "valid" / "car", 3, (200, 30, 30), size=(20, 30), fmt="JPEG")
    write_images(root / "valid" / "truck", 2, (30, 30, 200), size=(9, 9))
    return root


def batches(x, y, seed, epochs=2, **kw):
    ds = input_pipeline(x, y, 4, seed, **kw).repeat(epochs)
    return [(np.asarray(a), np.asarray(b)) for a, b in ds]


@pytest.mark.parametrize("cached", [False, True])
def test_same_seed_same_batches_as_in_memory(tmp_path, cached):
    root = folder(tmp_path / "cars")
    cfg = DatasetConfig("folder", (12, 16), path=str(root), stream="false", train_samples=12)
    memory = load_dataset(cfg, seed=1)
    streamed = load_dataset(replace(cfg, stream="true", cache=str(tmp_path / "cache" / "px") if cached else None),
                            seed=1)
    assert memory.pipeline == "memory" and streamed.pipeline == "stream"
    assert isinstance(streamed.x_train, ImageFiles) and streamed.x_train.shape == memory.x_train.shape
    assert (streamed.x_train.cache is not None) == cached
    np.testing.assert_array_equal(memory.y_train, streamed.y_train)  # the same stratified subsample
    a = batches(memory.x_train, memory.y_train, seed=5)
    b = batches(streamed.x_train, streamed.y_train, seed=5)
    assert len(a) == len(b) == 6
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], a[3][0])  # reshuffled each epoch
    val_a = batches(memory.x_val, memory.y_val, None, 1, shuffle=False, drop_remainder=False)
    val_b = batches(streamed.x_val, streamed.y_val, None, 1, shuffle=False, drop_remainder=False)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in val_a]), np.concatenate([x for x, _ in val_b]))
    if cached:
        again = load_dataset(replace(cfg, stream="true", cache=str(tmp_path / "cache" / "px")), seed=2)
        assert again.x_train.cache == streamed.x_train.cache  # reused: same files, same image size


def test_auto_streams_above_the_threshold(tmp_path):
    root = folder(tmp_path / "cars")
    cfg = DatasetConfig("folder", (12, 16), path=str(root))
    assert load_dataset(cfg, 0).pipeline == "memory"
    need = decoded_bytes(19, (12, 16))
    assert load_dataset(replace(cfg, stream_threshold_bytes=need - 1), 0).pipeline == "stream"
    assert load_dataset(replace(cfg, stream_threshold_bytes=need), 0).pipeline == "memory"


def test_corrupt_file_is_caught_by_the_prescan_when_streaming(tmp_path):
    root = folder(tmp_path / "cars")
    bad = root / "train" / "truck" / "img3.jpg"
    bad.write_bytes(bad.read_bytes()[:40])
    cfg = DatasetConfig("folder", (12, 16), path=str(root), stream="true")
    with pytest.raises(ConfigError, match=r"1 bad image file\(s\) in .*train/truck/img3.jpg: corrupt image"):
        load_dataset(cfg, 0)
    skipped = load_dataset(replace(cfg, on_bad_file="skip"), 0)
    assert skipped.pipeline == "stream" and len(skipped.x_train) == 13 and str(bad) not in skipped.x_train.paths


def test_streaming_sweep_logs_its_pipeline_and_bad_files_exit_2(tmp_path, write_experiment):
    root = folder(tmp_path / "cars")
    exp = write_experiment(tiny_experiment(name="stream", trials=1, train={"epochs": 1},
                                           dataset={"source": "folder", "path": str(root), "image_size": [16, 16],
                                                    "stream": True}))
    out = sweep(exp, tmp_path / "mlruns")
    assert out.finished == 1
    view = read_stores(exp, tmp_path / "mlruns")
    parent = next(r for r in view.runs if r.data.tags.get("kind") == "sweep")
    assert parent.data.tags["data_pipeline"] == "stream"
    assert np.isfinite(view.trials[0].value)
    (root / "valid" / "car" / "img0.jpg").write_bytes(b"not a jpeg")
    result = run_in_process("sweep.py", exp, "--mlruns", tmp_path / "other")
    assert result.returncode == 2 and "valid/car/img0.jpg: not a readable image" in result.stderr
    assert not (tmp_path / "other").exists()
