"""The augmentation preview shows a clear, asymmetric image: the original first, captioned rows."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from augsweep import plots
from augsweep.experiment.space import TrialConfig
from augsweep.runs.repeat import preview_image_index, preview_images


def _images() -> np.ndarray:
    x = np.zeros((4, 12, 12, 3), np.float32)
    x[0] = 0.5  # flat: nothing to see
    x[1, 2:10, 5:7] = 1.0  # a bar in the middle: a mirror or a half turn leaves it as it is
    x[2, 1:5, 1:9] = 0.15  # asymmetric but faint
    x[3, 1:3, 1:10] = 1.0  # a "7": asymmetric and clear
    x[3, 3:11, 7:9] = 1.0
    return x


def test_the_clear_asymmetric_image_is_chosen_deterministically():
    x = _images()
    assert preview_image_index(x) == 3 == preview_image_index(x.copy())


def test_rows_start_with_the_original_and_name_each_augmentation(tmp_path):
    x = _images()
    config = TrialConfig(2, augmentations=(("flip", (("mode", "horizontal"),)), ("contrast", (("factor", 0.3),))))
    rows = preview_images(config, SimpleNamespace(x_train=x), aug_seed=5)
    assert rows[0][0] == "original, then flip(mode=horizontal), contrast(factor=0.3)"
    np.testing.assert_array_equal(rows[0][1][0], x[3])
    assert [r[0] for r in rows[2:]] == ["flip(mode=horizontal) alone", "contrast(factor=0.3) alone"]
    path = plots.image_grid(rows, tmp_path / "preview.png")
    from PIL import Image

    with Image.open(path) as im:
        assert im.size[1] > 4 * 96  # four rows of tiles and their captions
    assert preview_images(TrialConfig(2), SimpleNamespace(x_train=x), aug_seed=5) is None
