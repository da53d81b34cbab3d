"""Keras-only twins of augsweep's own augmentation layers, for the exported `augmentation.py`.

`export` copies these class definitions (and `layer_seed`) into `augmentation.py` by their source text, so the
file runs where augsweep is not installed; they are registered under the package name `augmentation`, so an
`augmentation.keras` holding them loads once `augmentation.py` has been imported. Each gives the same outputs
as the registry's layer for the same seed (tests compare them), and takes images of any height, width and
channels: the window and the resampling are computed from the image's shape at call time. `RandomShear` is
Keras's own with a configuration that loads back (Keras's does not: see its docstring).
"""

from __future__ import annotations

import keras

from ..augment.registry import layer_seed

__all__ = ["RandomCropResize", "RandomShear", "TrivialAugment", "layer_seed"]


@keras.saving.register_keras_serializable(package="augmentation")
class RandomCropResize(keras.layers.Layer):
    """Random window of (1 - factor) of each side, resized back to the input's size; identity at inference.

    The window's position is drawn as `keras.layers.RandomCrop` draws it (one per batch), and it is resized
    with the bilinear, half-pixel rule of `keras.layers.Resizing`, written with gathers so it also runs when
    the height and width are known only at run time. (Keras's RandomCrop takes a fixed, centred window when
    the window keeps a whole side; on square images that window is the whole image either way.)
    """

    def __init__(self, factor, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _window(self, size):
        side = keras.ops.round(keras.ops.cast(size, "float64") * (1.0 - self.factor))
        side = keras.ops.maximum(keras.ops.cast(side, "int32"), 1)
        limit = keras.ops.cast(size - side + 1, "float32")
        start = keras.random.uniform((), 0.0, limit, seed=self.seed_generator)
        return side, keras.ops.cast(start, "int32")

    @staticmethod
    def _resample(images, axis, size, side, start):
        ops = keras.ops
        position = (ops.cast(ops.arange(size), "float32") + 0.5) * (
            ops.cast(side, "float32") / ops.cast(size, "float32")) - 0.5
        below = ops.floor(position)
        low = start + ops.maximum(ops.cast(below, "int32"), 0)
        high = start + ops.minimum(ops.cast(ops.ceil(position), "int32"), side - 1)
        weight = ops.reshape(position - below, (-1,) + (1,) * (-1 - axis))
        first = ops.take(images, low, axis=axis)
        return first + (ops.take(images, high, axis=axis) - first) * weight

    def call(self, inputs, training=None):
        if not training:
            return inputs
        images = keras.ops.cast(inputs, self.compute_dtype)
        shape = keras.ops.shape(images)
        height, width = shape[-3], shape[-2]
        crop_height, top = self._window(height)
        crop_width, left = self._window(width)
        images = self._resample(images, -2, width, crop_width, left)
        return self._resample(images, -3, height, crop_height, top)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


@keras.saving.register_keras_serializable(package="augmentation")
class TrivialAugment(keras.layers.Layer):
    """One uniformly chosen operation per image (or none) at a uniform random strength; identity at inference.

    `operations` lists them as `[name, Keras layer class name, its arguments without the seed]`; each gets
    the seed `layer_seed(seed, name)`.
    """

    def __init__(self, operations, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.operations = [[str(name), str(cls), dict(config)] for name, cls, config in operations]
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        base = 0 if seed is None else int(seed)
        self.op_layers = [getattr(keras.layers, cls)(**config, seed=layer_seed(base, name))
                          for name, cls, config in self.operations]

    def build(self, input_shape):
        for layer in self.op_layers:
            layer.build(input_shape)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        ops = keras.ops
        choice = keras.random.randint((ops.shape(inputs)[0],), 0, len(self.op_layers) + 1, seed=self.seed_generator)
        choice = ops.reshape(choice, (-1, 1, 1, 1))
        out = inputs
        # Every operation runs on the whole batch and each image keeps the one it drew (0: none).
        for i, layer in enumerate(self.op_layers, start=1):
            out = ops.where(ops.equal(choice, i), ops.cast(layer(inputs, training=True), out.dtype), out)
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "operations": self.operations, "seed": self.seed}


@keras.saving.register_keras_serializable(package="augmentation")
class RandomShear(keras.layers.RandomShear):
    """Keras's `RandomShear`, whose saved configuration loads back: Keras writes a factor f as the range
    (-f, f), which its constructor refuses, so a saved `keras.layers.RandomShear` does not load."""

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("x_factor", "y_factor"):
            value = config.get(key)
            if isinstance(value, (list, tuple)) and len(value) == 2 and value[1] > 0 and value[0] == -value[1]:
                config[key] = value[1]
        return super().from_config(config)
