"""The convnet builder: depth -> conv blocks, filters doubling, output by number of classes."""

from __future__ import annotations

import numpy as np
import pytest

from augsweep import augment
from augsweep.training.model import build_convnet, compile_model


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_depth_gives_blocks_and_doubling_filters(depth):
    import keras

    model = build_convnet((32, 32, 3), 2, depth)
    convs = [x for x in model.layers if isinstance(x, keras.layers.Conv2D)]
    pools = [x for x in model.layers if isinstance(x, keras.layers.MaxPooling2D)]
    assert len(convs) == len(pools) == depth
    assert [c.filters for c in convs] == [32 * 2**i for i in range(depth)]
    assert convs[0].kernel_size == (5, 5) and all(c.kernel_size == (3, 3) for c in convs[1:])
    assert model.layers[-2].units == 6
    assert model.output_shape == (None, 1)


def test_multiclass_head_and_accuracy_name():
    model = compile_model(build_convnet((16, 16, 1), 10, 2, filters=8, dense_units=12), 10, 1e-3)
    assert model.output_shape == (None, 10)
    assert model.layers[-2].units == 12
    history = model.fit(np.zeros((8, 16, 16, 1), np.float32), np.arange(8) % 10, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}


def test_builder_is_pure_and_seeded():
    a = build_convnet((16, 16, 3), 2, 2, seed=4)
    b = build_convnet((16, 16, 3), 2, 2, seed=4)
    c = build_convnet((16, 16, 3), 2, 2, seed=5)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_augmentations_sit_inside_the_model_and_only_train():
    layers = augment.build_layers({"flip": {"mode": "horizontal"}, "contrast": {"factor": 0.5}}, 1)
    model = build_convnet((16, 16, 3), 2, 1, augmentation_layers=layers)
    assert [x.name for x in model.layers[:2]] == ["aug_flip", "aug_contrast"]
    twin = build_convnet((16, 16, 3), 2, 1)  # the same network and initial weights, no augmentation
    assert [w.shape for w in model.get_weights()] == [w.shape for w in twin.get_weights()]
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    # Inference: the augmentation layers are the identity, so the two models agree.
    np.testing.assert_allclose(model.predict(x, verbose=0), twin.predict(x, verbose=0), atol=1e-6)
    # Training: the augmentation layers transform the input, so they disagree.
    assert not np.allclose(np.asarray(model(x, training=True)), np.asarray(twin(x, training=True)), atol=1e-4)


def test_too_deep_for_the_image_is_rejected():
    with pytest.raises(ValueError, match=r"depth must be in \[1, 3\] for 8x8 images"):
        build_convnet((8, 8, 1), 2, 4)


def test_seeds_set_under_another_backend_are_the_ones_keras_sets(monkeypatch):
    """Under a backend other than TensorFlow, `set_global_seed` leaves Keras's `set_random_seed` out (it would
    import TensorFlow to seed it) and sets the rest itself: Python's and NumPy's generators, Keras's global seed
    and a fresh global seed generator, so every draw after it is the one after `set_random_seed`."""
    import random

    import keras

    from augsweep import runtime
    from augsweep.training import train

    def draws() -> tuple:
        return (random.random(), float(np.random.rand()),
                np.asarray(keras.random.uniform((4,))).tolist(), np.asarray(keras.random.normal((2,))).tolist())

    keras.utils.set_random_seed(123)
    keras.random.uniform((1,))  # the global generator advanced: the next call must make a fresh one
    keras.utils.set_random_seed(123)
    expected = draws()
    monkeypatch.setattr(runtime, "backend", lambda: "jax")
    random.seed(9)  # other state, as a training leaves it
    np.random.seed(9)
    keras.random.uniform((1,))
    train.set_global_seed(123)
    assert draws() == expected
    train.set_global_seed(124)
    assert draws() != expected  # the seed is what decides them
