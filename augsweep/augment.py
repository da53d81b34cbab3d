"""Augmentation registry: name -> parameter schema + builder of seeded Keras preprocessing layers.

The schema half is pure data (no Keras import), so `config` can validate experiment files and
`sweep.py --help` stays fast. Builders import Keras lazily and return layers that are active only
in training: every Keras random preprocessing layer is the identity when `training=False`, and
`crop` is wrapped so that inference never crops.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

# Images inside augsweep are float32 in [0, 1]; Keras defaults several layers to 0-255.
VALUE_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter of an augmentation: a float in (low, high] or one of `choices`."""

    kind: str  # "float" | "choice"
    low: float = 0.0
    high: float = 1.0
    choices: tuple[str, ...] = ()
    default: Any = None  # what an experiment gets when it names the augmentation without this key
    doc: str = ""


@dataclass(frozen=True)
class AugmentationSpec:
    """A registry entry: parameter schema plus a builder `(params, seed) -> keras layer`."""

    name: str
    params: Mapping[str, ParamSpec]
    build: Callable[[Mapping[str, Any], int], Any]
    doc: str = ""
    geometric: bool = False  # resamples pixel positions (XLA-incompatible in Keras, see bench/)


def _keras():
    import keras  # lazy: keeps config validation and `--help` free of TensorFlow start-up

    return keras


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


WARP_KINDS = ("translation", "zoom", "shear", "perspective", "elastic")

REGISTRY: dict[str, AugmentationSpec] = {}


def register(spec: AugmentationSpec) -> AugmentationSpec:
    """Add (or replace) a registry entry; tests use this to plant a failing augmentation."""
    REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registry entry added with `register`."""
    REGISTRY.pop(name, None)


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


def layer_seed(aug_seed: int, name: str) -> int:
    """Seed for one augmentation layer: stable per (repeat seed, augmentation name), not per order."""
    return (aug_seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1)


def build_order(augmentations) -> list[str]:
    """Names of the augmentations in the order their layers are applied (registry order)."""
    order = list(REGISTRY)
    return sorted(augmentations, key=lambda n: order.index(n) if n in order else len(order))


def build_layers(augmentations: Mapping[str, Mapping[str, Any]], aug_seed: int) -> list:
    """Seeded Keras layers for the augmentations that are on, in registry order."""
    return [REGISTRY[n].build(augmentations[n], layer_seed(aug_seed, n)) for n in build_order(augmentations)]


def _define_crop_layer():
    keras = _keras()

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


def RandomCropResize(factor, seed=None, **kwargs):  # noqa: N802 - reads like the Keras layer it builds
    """Build the training-only crop+resize layer (class defined lazily with Keras)."""
    global _CROP_CLASS
    if _CROP_CLASS is None:
        _CROP_CLASS = _define_crop_layer()
    return _CROP_CLASS(factor, seed=seed, **kwargs)


def preview(augmentations: Mapping[str, Mapping[str, Any]], aug_seed: int, image, n: int = 16):
    """`n` independent training-mode augmentations of one image (NumPy array, values in [0, 1])."""
    import numpy as np

    keras = _keras()
    batch = np.repeat(np.asarray(image, np.float32)[None], n, axis=0)
    for layer in build_layers(augmentations, aug_seed):
        batch = layer(batch, training=True)
    return np.clip(keras.ops.convert_to_numpy(batch), 0.0, 1.0)


# The literature's policies (RandAugment, TrivialAugment) are registry entries built from the
# entries above; imported last so that they can use this module's helpers.
from . import policies  # noqa: E402,F401
