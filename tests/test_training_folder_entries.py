"""Entries of an image folder that cannot be images (a broken or looping link, a FIFO, a folder named `x.png`)
are left out with one warning line that counts them and shows one, instead of silently."""

from __future__ import annotations

import os

from augsweep.experiment import DatasetConfig
from augsweep.training.data import load_dataset
from tests.test_training_data import write_images


def test_entries_that_cannot_be_images_are_counted_in_one_warning(tmp_path):
    root = tmp_path / "ds"
    write_images(root / "car", 6, (200, 30, 30))
    write_images(root / "truck", 6, (30, 30, 200))
    os.symlink(root / "car" / "gone.png", root / "car" / "dangling.png")
    os.symlink(root / "truck" / "loop.png", root / "truck" / "loop.png")
    os.mkfifo(root / "truck" / "pipe.png")
    (root / "car" / "folder.png").mkdir()
    (root / "car" / "more").mkdir()  # an ordinary subfolder is walked, not counted
    write_images(root / "car" / "more", 1, (200, 30, 30))
    ds = load_dataset(DatasetConfig("folder", (8, 8), path=str(root), validation_split=0.25), 0)
    assert len(ds.y_train) + len(ds.y_val) == 13
    notes = [w for w in ds.warnings if "cannot be image files" in w]
    assert len(notes) == 1 and "\n" not in notes[0], ds.warnings
    assert notes[0].startswith("skipped 4 dataset entries") and "e.g. car/dangling.png" in notes[0], notes[0]


def test_a_clean_folder_has_no_such_warning(tmp_path):
    root = tmp_path / "ds"
    write_images(root / "car", 4, (200, 30, 30))
    write_images(root / "truck", 4, (30, 30, 200))
    ds = load_dataset(DatasetConfig("folder", (8, 8), path=str(root), validation_split=0.25), 0)
    assert not [w for w in ds.warnings if "cannot be image files" in w]
