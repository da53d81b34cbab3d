"""The built-in augmentations (flip, contrast, brightness, rotation, warp, crop) as registry entries.

Builders import Keras lazily and return layers that are active only in training: every Keras
random preprocessing layer is the identity when `training=False`, and augsweep's own layers
(`RandomCropResize`, `RandomMirror`) pass images through at inference.

Each entry's `ranges` states what its layer draws, for a given `factor`, in the units below (images are
float32 in [0, 1]); tests/test_augment_ranges.py measures every one on the built layers.
"""

from __future__ import annotations

from typing import Any, Mapping

from .registry import VALUE_RANGE, AugmentationSpec, Drawn, ParamSpec, Revision, build_layers, register
from .registry import keras as _keras

WARP_KINDS = ("translation", "zoom", "shear", "perspective", "elastic")

SYMMETRIC = ((0.0, -1.0), (0.0, 1.0))  # [-f, +f]
LEFT_RIGHT = Drawn("mirrored left-right", (0.5, 0.0), chance=True)
UP_DOWN = Drawn("mirrored up-down", (0.5, 0.0), chance=True)
DISTORTED = Drawn("distorted", (1.0, 0.0), chance=True)  # Keras's perspective and elastic layers may skip images
RANGES = {
    "flip": {
        "horizontal": (LEFT_RIGHT,),
        "vertical": (UP_DOWN,),
        "both": (LEFT_RIGHT, UP_DOWN),  # independently
    },
    "contrast": {"": (Drawn("contrast factor", (1.0, -1.0), (1.0, 1.0),
                            note="each channel's deviations from its mean are multiplied by it, then clipped to "
                                 "[0, 1]"),)},
    "brightness": {"": (Drawn("brightness offset", *SYMMETRIC, unit="x the value range (1)",
                              note="added to every pixel, then clipped to [0, 1]"),)},
    "rotation": {"": (Drawn("angle", *SYMMETRIC, unit="turns", note="+-360 f degrees, counter-clockwise positive"),)},
    "warp": {
        "translation": (Drawn("shift right", *SYMMETRIC, unit="x the width"),
                        Drawn("shift down", *SYMMETRIC, unit="x the height")),
        "zoom": (Drawn("zoom", (1.0, -1.0), (1.0, 1.0),
                       note="the image is shown at 1/zoom its size about its centre, both axes alike: "
                            "above 1 zooms out"),),
        "shear": (Drawn("shear x", *SYMMETRIC),
                  Drawn("shear y", *SYMMETRIC,
                        note="the pixel at (x, y) shows the input's (x + shear x * y, y + shear y * x): about the "
                             "top-left corner (Keras's definition), so the image also shifts, by up to about f/2 "
                             "of its side")),
        "perspective": (DISTORTED,
                        Drawn("corner shift", (0.0, -0.5), (0.0, 0.5), unit="x the side",
                              note="each corner but the top-left moves along each axis where its coordinate is "
                                   "not 0 (Keras's definition)")),
        "elastic": (DISTORTED,
                    Drawn("elastic magnitude", (0.0, 0.0), (0.0, 1.0), per="batch",
                          note="each pixel moves by alpha times a Gaussian-blurred normal field of sd sigma, alpha "
                               "= 0.1 magnitude x the longer side, sigma = 0.05 magnitude x the shorter side, in "
                               "pixels; Keras draws one field for both axes")),
    },
    "crop": {"": (Drawn("window side", (1.0, -1.0), unit="x the side"),
                  Drawn("window left", (0.0, 0.0), (0.0, 1.0), unit="x the width"),
                  Drawn("window top", (0.0, 0.0), (0.0, 1.0), unit="x the height",
                        note="the window is resized back to the image size"))},
}


def _flip(p, seed):
    if p["mode"] == "both":
        # Keras's "horizontal_and_vertical" flips both axes with one draw: never a single mirror.
        return RandomMirror(seed=seed, name="aug_flip")
    return _keras().layers.RandomFlip(p["mode"], seed=seed, name="aug_flip")


def _contrast(p, seed):
    # A single float f gives [1, 1 + f]: Keras clamps the lower factor at 0 (RandomContrast._FACTOR_BOUNDS);
    # (f, f) is its spelling of [1 - f, 1 + f].
    return _keras().layers.RandomContrast(
        (p["factor"], p["factor"]), value_range=VALUE_RANGE, seed=seed, name="aug_contrast"
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
    # `factor` is these layers' probability of applying, drawn per image in [low, high]: a single 1.0 means
    # [0, 1], i.e. half the images; (1.0, 1.0) distorts every one. The searched magnitude is `scale`.
    if kind == "perspective":
        return layers.RandomPerspective(factor=(1.0, 1.0), scale=f, seed=seed, name="aug_warp")
    if kind == "elastic":
        return layers.RandomElasticTransform(
            factor=(1.0, 1.0), scale=f, value_range=VALUE_RANGE, seed=seed, name="aug_warp"
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
        ranges=RANGES["flip"],
        revisions=(Revision(2, "mode both now mirrors left-right and up-down independently (before, both or "
                               "neither: half the images turned by 180 degrees, none mirrored along one axis only)",
                            ("both",)),),
    ),
    AugmentationSpec(
        "contrast", {"factor": ParamSpec("float", 0.0, 1.0, default=(0.1, 0.5))}, _contrast,
        "scale each image's contrast by a random factor", ranges=RANGES["contrast"],
        revisions=(Revision(2, "its factor is now drawn from [1 - f, 1 + f]; before, Keras clamped it to "
                               "[1, 1 + f], so contrast was only ever raised"),),
    ),
    AugmentationSpec(
        "brightness", {"factor": ParamSpec("float", 0.0, 1.0, default=(0.05, 0.3))}, _brightness,
        "add a random offset to every pixel", ranges=RANGES["brightness"],
    ),
    AugmentationSpec(
        "rotation", {"factor": ParamSpec("float", 0.0, 1.0, default=(0.02, 0.5))}, _rotation,
        "rotate about the centre by a random angle", geometric=True, ranges=RANGES["rotation"],
    ),
    AugmentationSpec(
        "warp",
        {
            "kind": ParamSpec("choice", choices=WARP_KINDS, default=("translation",)),
            "factor": ParamSpec("float", 0.0, 1.0, default=(0.05, 0.3)),
        },
        _warp,
        "distort the geometry: a translation, zoom, shear, perspective or elastic distortion of size factor",
        geometric=True, ranges=RANGES["warp"],
        revisions=(Revision(2, "kinds perspective and elastic now distort every image (before, about half of "
                               "them)", ("perspective", "elastic")),),
    ),
    AugmentationSpec(
        "crop", {"factor": ParamSpec("float", 0.0, 0.9, default=(0.05, 0.3))}, _crop,
        "crop a random window of each image and resize it back", geometric=True, ranges=RANGES["crop"],
        revisions=(Revision(2, "each image now gets its own window, of side exactly 1 - f (before, one window "
                               "position for the whole batch, its side rounded to whole pixels)"),),
    ),
):
    register(_spec)


def _define_layers():
    from . import standalone

    classes = {"RandomCropResize": standalone.RandomCropResize, "RandomMirror": standalone.RandomMirror}
    # Models saved before these classes moved name them `augsweep>...`: they keep loading.
    custom = _keras().saving.get_custom_objects()
    for name, cls in classes.items():
        custom.setdefault(f"augsweep>{name}", cls)
    return classes


_CLASSES: dict = {}


def layer_classes() -> dict:
    """augsweep's own Keras layer classes by name (defined, and registered for loading, on first use)."""
    if not _CLASSES:
        _CLASSES.update(_define_layers())
    return _CLASSES


def crop_layer_class():
    """The `RandomCropResize` Keras class; defining it registers every augsweep layer for loading."""
    return layer_classes()["RandomCropResize"]


def RandomCropResize(factor, seed=None, **kwargs):  # noqa: N802 - reads like the Keras layer it builds
    """Build the training-only crop+resize layer (class defined lazily with Keras)."""
    return layer_classes()["RandomCropResize"](factor, seed=seed, **kwargs)


def RandomMirror(seed=None, **kwargs):  # noqa: N802 - reads like the Keras layer it builds
    """Build the training-only layer that mirrors each axis independently (class defined lazily with Keras)."""
    return layer_classes()["RandomMirror"](seed=seed, **kwargs)


def preview(augmentations: Mapping[str, Mapping[str, Any]], aug_seed: int, image, n: int = 16):
    """`n` independent training-mode augmentations of one image (NumPy array, values in [0, 1])."""
    import numpy as np

    keras = _keras()
    batch = np.repeat(np.asarray(image, np.float32)[None], n, axis=0)
    for layer in build_layers(augmentations, aug_seed):
        batch = layer(batch, training=True)
    return np.clip(keras.ops.convert_to_numpy(batch), 0.0, 1.0)
