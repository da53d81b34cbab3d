"""Datasets: digits and synthetic arrays, and the folder loader on real PNG/JPEG files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augsweep.experiment import ConfigError, DatasetConfig
from augsweep.training.data import load_dataset, make_synthetic


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


# ----------------------------------------------------------------------------- bad folders, bad files


def _two_classes(root: Path, n: int = 6, size=(20, 30)) -> Path:
    write_images(root / "train" / "car", n, (200, 30, 30), size=size)
    write_images(root / "train" / "truck", n, (30, 30, 200), size=size, fmt="JPEG")
    return root


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_missing_train_folder_and_no_class_folders(tmp_path):
    write_images(tmp_path / "only-valid" / "valid" / "car", 2, (1, 2, 3))
    with pytest.raises(ConfigError, match="has valid/ but no train/ folder.*only-valid"):
        load_dataset(DatasetConfig("folder", (8, 8), path=str(tmp_path / "only-valid")), 0)
    (tmp_path / "flat-files").mkdir()
    (tmp_path / "flat-files" / "a.png").write_bytes(b"")
    with pytest.raises(ConfigError, match="has no class folders"):
        load_dataset(DatasetConfig("folder", (8, 8), path=str(tmp_path / "flat-files")), 0)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigError, match="must be a folder"):
        load_dataset(DatasetConfig("folder", (8, 8), path=str(tmp_path / "a-file")), 0)


def test_bad_files_are_listed_by_name_with_the_count(tmp_path):
    root = _two_classes(tmp_path / "bad")
    _truncate(root / "train" / "truck" / "img0.jpg")  # a truncated JPEG
    (root / "train" / "car" / "notes.png").write_text("not a picture")  # text named .png
    (root / "train" / "car" / "labels.csv").write_text("a,b\n")  # not an image at all
    (root / "train" / "car" / ".DS_Store").write_bytes(b"\0")  # hidden: ignored
    with pytest.raises(ConfigError) as e:
        load_dataset(DatasetConfig("folder", (8, 8), path=str(root)), 0)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("dataset.path: 3 bad image file(s)")
    assert "train/truck/img0.jpg: corrupt image" in msg
    assert "train/car/notes.png: not a readable image" in msg
    assert "train/car/labels.csv: not an image file" in msg
    assert ".DS_Store" not in msg and "on_bad_file: skip" in msg


def test_more_than_ten_bad_files_are_counted_not_all_listed(tmp_path):
    root = _two_classes(tmp_path / "many")
    for i in range(13):
        (root / "train" / "car" / f"bad{i:02d}.png").write_text("?")
    with pytest.raises(ConfigError, match=r"13 bad image file\(s\).*bad09.png.*\(and 3 more\)") as e:
        load_dataset(DatasetConfig("folder", (8, 8), path=str(root)), 0)
    assert "bad10.png" not in str(e.value)


def test_skip_mode_warns_with_the_list_and_keeps_the_rest(tmp_path):
    root = _two_classes(tmp_path / "skip")
    _truncate(root / "train" / "truck" / "img1.jpg")
    ds = load_dataset(DatasetConfig("folder", (8, 8), path=str(root), validation_split=0.25,
                                    on_bad_file="skip"), 0)
    assert len(ds.x_train) + len(ds.x_val) == 11
    assert any("skipped 1 bad image file(s)" in w and "train/truck/img1.jpg" in w for w in ds.warnings)


def test_modes_are_converted_and_small_images_upscaled_with_a_warning(tmp_path):
    root = tmp_path / "modes"
    write_images(root / "gray", 3, (120, 120, 120), mode="L")
    write_images(root / "rgba", 3, (10, 200, 10), mode="RGBA")
    write_images(root / "palette", 3, (10, 10, 200), mode="P")
    write_images(root / "palette", 1, (10, 10, 200), size=(4, 4))  # overwrites img0 with a 4x4 image
    ds = load_dataset(DatasetConfig("folder", (8, 8), path=str(root), validation_split=0.3), 0)
    assert ds.x_train.shape[1:] == (8, 8, 3) and ds.num_classes == 3  # all RGB, none rejected
    assert any("1 image(s) smaller than 8x8 were upscaled: palette/img0.png" in w for w in ds.warnings)


def test_scan_is_cached_by_file_list_and_mtimes(tmp_path):
    root = _two_classes(tmp_path / "cache")
    cfg = DatasetConfig("folder", (8, 8), path=str(root), validation_split=0.25)
    first = load_dataset(cfg, 0)
    assert load_dataset(cfg, 0) is first  # scanned once
    img = root / "train" / "car" / "img0.png"
    os.utime(img, ns=(img.stat().st_atime_ns, img.stat().st_mtime_ns + 10**9))
    second = load_dataset(cfg, 0)
    assert second is not first  # an edited file is rescanned
    write_images(root / "train" / "car" / "more", 1, (200, 30, 30))
    third = load_dataset(cfg, 0)
    assert third is not second and len(third.x_train) + len(third.x_val) == 13  # a new file too


def _folder_experiment(root: Path, **dataset) -> dict:
    from tests.helpers import tiny_experiment

    return tiny_experiment(name="folder", trials=1, train={"epochs": 1},
                           dataset={"source": "folder", "path": str(root), "image_size": [16, 16],
                                    "validation_split": 0.25, **dataset},
                           search_space={"depth": 1, "augmentations": {"flip": None}})


@pytest.mark.parametrize("case", ["truncated-jpeg", "text-as-png", "empty-class"])
def test_cli_bad_data_exits_2_naming_the_file_before_any_store(tmp_path, write_experiment, case):
    from tests.helpers import run_in_process

    root = _two_classes(tmp_path / "data")
    if case == "truncated-jpeg":
        _truncate(root / "train" / "truck" / "img2.jpg")
        expected = "train/truck/img2.jpg: corrupt image"
    elif case == "text-as-png":
        (root / "train" / "car" / "readme.png").write_text("hello")
        expected = "train/car/readme.png: not a readable image"
    else:
        (root / "train" / "bus").mkdir()
        expected = "class folder 'bus' is empty"
    mlruns = tmp_path / "mlruns"
    result = run_in_process("sweep.py", write_experiment(_folder_experiment(root)), "--mlruns", mlruns)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: dataset.path") and expected in lines[0]
    assert not mlruns.exists()  # stores untouched


def test_skip_mode_sweep_trains_on_the_rest(tmp_path, write_experiment):
    import optuna

    from augsweep.experiment import load_experiment
    from augsweep.stores.study import resolve_stores
    from tests.helpers import sweep

    root = _two_classes(tmp_path / "data")
    _truncate(root / "train" / "car" / "img3.png")
    exp = load_experiment(write_experiment(_folder_experiment(root, on_bad_file="skip")))
    lines: list[str] = []
    outcome = sweep(exp, tmp_path / "m", echo=lines.append)
    assert outcome.finished == 1
    assert any(line.startswith("warning: skipped 1 bad image file(s)") and "train/car/img3.png" in line
               for line in lines)
    assert "8 train / 3 validation images" in "\n".join(lines)  # 12 files, 1 skipped
    study = optuna.load_study(study_name="folder", storage=resolve_stores(exp, tmp_path / "m").storage_url)
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
