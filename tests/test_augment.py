"""Each augmentation: shape and dtype kept, identity at inference, reproducible with a seed."""

from __future__ import annotations

import numpy as np
import pytest

from augsweep import augment
from augsweep.training.data import make_synthetic

CASES = [
    ("flip", {"mode": "horizontal"}), ("flip", {"mode": "vertical"}), ("flip", {"mode": "both"}),
    ("contrast", {"factor": 0.5}), ("brightness", {"factor": 0.3}), ("rotation", {"factor": 0.25}),
    ("warp", {"kind": "translation", "factor": 0.2}), ("warp", {"kind": "zoom", "factor": 0.2}),
    ("warp", {"kind": "shear", "factor": 0.2}), ("warp", {"kind": "perspective", "factor": 0.3}),
    ("warp", {"kind": "elastic", "factor": 0.3}), ("crop", {"factor": 0.3}),
]


@pytest.fixture(scope="module")
def images():
    x, _ = make_synthetic(8, (24, 20), 2, seed=1)
    return x


def _apply(name, params, seed, x, training):
    import keras

    (layer,) = augment.build_layers({name: params}, seed)
    return keras.ops.convert_to_numpy(layer(x, training=training))


@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{'-'.join(map(str, p.values()))}" for n, p in CASES])
def test_augmentation_contract(images, name, params):
    out = _apply(name, params, 7, images, training=True)
    assert out.shape == images.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert not np.allclose(out, images), "a training-mode augmentation should change some image"
    np.testing.assert_array_equal(_apply(name, params, 7, images, training=False), images)
    np.testing.assert_allclose(_apply(name, params, 7, images, training=True), out, atol=1e-6)


def test_value_range_is_zero_to_one(images):
    """RandomContrast/RandomBrightness default to 0-255; ours must not push [0, 1] images far out."""
    for name, params in [("contrast", {"factor": 0.5}), ("brightness", {"factor": 0.3})]:
        out = _apply(name, params, 3, images, training=True)
        assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6


def test_layer_seeds_depend_on_name_not_order(images):
    assert augment.layer_seed(5, "flip") != augment.layer_seed(5, "rotation")
    assert augment.layer_seed(5, "flip") != augment.layer_seed(6, "flip")
    flip, rotation = {"mode": "horizontal"}, {"factor": 0.3}
    one = augment.build_layers({"flip": flip, "rotation": rotation}, 5)
    other = augment.build_layers({"rotation": rotation, "flip": flip}, 5)
    assert [x.name for x in one] == [x.name for x in other] == ["aug_flip", "aug_rotation"]
    assert [x.seed for x in one] == [x.seed for x in other]

    def apply(layers):
        batch = images[:8]
        for layer in layers:
            batch = layer(batch, training=True)
        return np.asarray(batch)

    np.testing.assert_array_equal(apply(one), apply(other))  # the same draws, whatever the insertion order


def test_preview_gives_sixteen_different_views(images):
    views = augment.preview({"rotation": {"factor": 0.5}}, 11, images[0])
    assert views.shape == (16, *images.shape[1:])
    assert len({v.tobytes() for v in views}) == 16
