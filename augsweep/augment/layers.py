"""The built-in augmentations (flip, contrast, brightness, rotation, warp, crop) as registry entries.

Builders import Keras lazily and return layers that are active only in training: every Keras
random preprocessing layer is the identity when `training=False`, and `crop` is wrapped so that
inference never crops.
"""

from __future__ import annotations

from typing import Any, Mapping

from .registry import VALUE_RANGE, AugmentationSpec, ParamSpec, build_layers, register
from .registry import keras as _keras

WARP_KINDS = ("translation", "zoom", "shear", "perspective", "elastic")


def _flip(p, seed):
    mode = {"horizontal": "horizontal", "vertical": "vertical", "both": "horizontal_and_vertical"}
    return _keras().layers.RandomFlip(mode[p["mode"]], seed=seed, name="aug_flip")


def _contrast(p, seed):
    return _keras().layers.RandomContrast(
        p["factor"], value_range=VALUE_RANGE, seed=seed, name="aug_contrast"
    )


def _brightness(p, seed):
    return _keras().layers.RandomBrightness(
        p["factor"], value_range=VALUE_RANGE, seed=seed, name="aug_brightness"
    )


def _rotation(p, seed):
    # Keras' factor is already a fraction of a full turn: 0.5 means up to +-180 degrees.
    return _keras().layers.RandomRotation(p["factor"], seed=seed, name="aug_rotation")


def _warp(p, seed):
    layers, f = _keras().layers, p["factor"]
    kind = p["kind"]
    if kind == "translation":
        return layers.RandomTranslation(f, f, seed=seed, name="aug_warp")
    if kind == "zoom":
        return layers.RandomZoom(f, seed=seed, name="aug_warp")
    if kind == "shear":
        return layers.RandomShear(x_factor=f, y_factor=f, seed=seed, name="aug_warp")
    if kind == "perspective":
        # factor=1.0: always applied; the searched magnitude is the corner displacement.
        return layers.RandomPerspective(factor=1.0, scale=f, seed=seed, name="aug_warp")
    if kind == "elastic":
        return layers.RandomElasticTransform(
            factor=1.0, scale=f, value_range=VALUE_RANGE, seed=seed, name="aug_warp"
        )
    raise ValueError(f"warp.kind must be one of {WARP_KINDS}. Received: kind={kind!r}")


def _crop(p, seed):
    return RandomCropResize(p["factor"], seed=seed, name="aug_crop")


for _spec in (
    AugmentationSpec(
        "flip",
        {"mode": ParamSpec("choice", choices=("horizontal", "vertical", "both"), default=("horizontal",))},
        _flip,
        "mirror the image",
    ),
    AugmentationSpec(
        "contrast", {"factor": ParamSpec("float", 0.0, 1.0, default=(0.1, 0.5))}, _contrast,
        "scale contrast by a random factor in [1 - factor, 1 + factor]",
    ),
    AugmentationSpec(
        "brightness", {"factor": ParamSpec("float", 0.0, 1.0, default=(0.05, 0.3))}, _brightness,
        "add a random offset of up to factor x value range",
    ),
    AugmentationSpec(
        "rotation", {"factor": ParamSpec("float", 0.0, 1.0, default=(0.02, 0.5))}, _rotation,
        "rotate by up to factor of a full turn", geometric=True,
    ),
    AugmentationSpec(
        "warp",
        {
            "kind": ParamSpec("choice", choices=WARP_KINDS, default=("translation",)),
            "factor": ParamSpec("float", 0.0, 1.0, default=(0.05, 0.3)),
        },
        _warp,
        "translation, zoom, shear, perspective or elastic distortion of size factor",
        geometric=True,
    ),
    AugmentationSpec(
        "crop", {"factor": ParamSpec("float", 0.0, 0.9, default=(0.05, 0.3))}, _crop,
        "crop a random window (side shrunk by factor) and resize it back", geometric=True,
    ),
):
    register(_spec)


def _define_crop_layer():
    keras = _keras()

    # Registered, so a saved model or augmentation block holding it loads wherever augsweep's layers are imported.
    @keras.saving.register_keras_serializable(package="augsweep")
    class RandomCropResize(keras.layers.Layer):
        """Random crop of (1 - factor) of each side, resized back; identity at inference."""

        def __init__(self, factor, seed=None, **kwargs):
            super().__init__(**kwargs)
            self.factor = float(factor)
            self.seed = seed
            self.seed_generator = keras.random.SeedGenerator(seed)

        def build(self, input_shape):
            height, width = int(input_shape[-3]), int(input_shape[-2])
            self._crop = keras.layers.RandomCrop(
                max(1, round(height * (1 - self.factor))),
                max(1, round(width * (1 - self.factor))),
                seed=self.seed,
            )
            self._resize = keras.layers.Resizing(height, width)

        def call(self, inputs, training=None):
            if not training:
                return inputs
            return self._resize(self._crop(inputs, training=True))

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "factor": self.factor, "seed": self.seed}

    return RandomCropResize


_CROP_CLASS = None


def crop_layer_class():
    """The `RandomCropResize` Keras class (defined, and registered for loading, on first use)."""
    global _CROP_CLASS
    if _CROP_CLASS is None:
        _CROP_CLASS = _define_crop_layer()
    return _CROP_CLASS


def RandomCropResize(factor, seed=None, **kwargs):  # noqa: N802 - reads like the Keras layer it builds
    """Build the training-only crop+resize layer (class defined lazily with Keras)."""
    return crop_layer_class()(factor, seed=seed, **kwargs)


def preview(augmentations: Mapping[str, Mapping[str, Any]], aug_seed: int, image, n: int = 16):
    """`n` independent training-mode augmentations of one image (NumPy array, values in [0, 1])."""
    import numpy as np

    keras = _keras()
    batch = np.repeat(np.asarray(image, np.float32)[None], n, axis=0)
    for layer in build_layers(augmentations, aug_seed):
        batch = layer(batch, training=True)
    return np.clip(keras.ops.convert_to_numpy(batch), 0.0, 1.0)
