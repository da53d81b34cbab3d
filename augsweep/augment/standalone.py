"""augsweep's own Keras layers (crop, mirror, a shear that loads back, a TrivialAugment twin), written with Keras
alone so the exported `augmentation.py` can carry them by their source text.

The registry builds crop and mirror from these classes (`layers.layer_classes`), so the exported block and the
sweep train the very same code. `export` copies these definitions (and `layer_seed`) into `augmentation.py`, so
the file runs where augsweep is not installed; they are registered under the package name `augmentation`, so an
`augmentation.keras` holding them loads once `augmentation.py` has been imported (and, in augsweep, once this
module is imported). Each takes images of any height, width and channels. `RandomShear` is Keras's own with a
configuration that loads back (Keras's does not: see its docstring). Importing this module imports Keras.
"""

from __future__ import annotations

import keras

from .registry import layer_seed

__all__ = ["RandomCropResize", "RandomMirror", "RandomShear", "TrivialAugment", "layer_seed"]


@keras.saving.register_keras_serializable(package="augmentation")
class RandomCropResize(keras.layers.Layer):
    """A random window of side (1 - factor) of each image, its own for every image, resized back (bilinear, as
    `Resizing` would); identity at inference. Any height, width and channels: read from the images at call time."""

    def __init__(self, factor, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_jit = False  # like Keras's geometric layers on TensorFlow

    def call(self, inputs, training=None):
        if not training:
            return inputs
        ops = keras.ops
        shape = ops.shape(inputs)
        height, width = ops.cast(shape[-3], "float32"), ops.cast(shape[-2], "float32")
        # Window top-left corner (a fraction of the side in [0, factor]) for each image.
        corner = keras.random.uniform((shape[0], 2), 0.0, self.factor, seed=self.seed_generator)
        side = 1.0 - self.factor
        # affine_transform maps each output pixel (x, y) to the input point it reads; pixel centres sit at
        # half-pixel offsets of the window, as when cropping then resizing.
        zero = ops.zeros_like(corner[:, 0])
        x0 = side * 0.5 - 0.5 + corner[:, 0] * width
        y0 = side * 0.5 - 0.5 + corner[:, 1] * height
        transform = ops.stack([zero + side, zero, x0, zero, zero + side, y0, zero, zero], axis=1)
        out = ops.image.affine_transform(ops.cast(inputs, "float32"), transform, interpolation="bilinear",
                                         fill_mode="nearest")
        return ops.cast(out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


@keras.saving.register_keras_serializable(package="augmentation")
class RandomMirror(keras.layers.Layer):
    """Mirror each image left-right with probability 0.5 and, independently, up-down with probability 0.5;
    identity at inference."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        ops = keras.ops
        draws = keras.random.uniform((ops.shape(inputs)[0], 2), seed=self.seed_generator)
        left_right = ops.reshape(draws[:, 0] < 0.5, (-1, 1, 1, 1))
        up_down = ops.reshape(draws[:, 1] < 0.5, (-1, 1, 1, 1))
        out = ops.where(left_right, ops.flip(inputs, axis=-2), inputs)
        return ops.where(up_down, ops.flip(out, axis=-3), out)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


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
