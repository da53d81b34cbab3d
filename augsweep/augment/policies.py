"""Standard augmentation policies from the literature, as registry entries an ablation compares against.

- `randaugment`: Keras's `RandAugment` (Cubuk et al., 2020): `num_ops` transformations drawn per
  batch, all at one strength `factor` (what they draw, measured: `RANDAUGMENT_RANGES`).
- `trivialaugment`: TrivialAugment-style (Müller & Hutter, 2021): for each image, one transformation
  chosen uniformly from identity and the registry's flip, contrast, brightness, rotation and warps,
  built by those entries at their strongest (`TRIVIAL_OPS`), so each image's strength is drawn
  uniformly within that entry's range (e.g. a contrast factor in [0.5, 1.5]).

Both are training-only layers, like every other registry entry, so they run inside the model.
Registering them also lets a search space switch them on and off like any augmentation.
"""

from __future__ import annotations

from .registry import REGISTRY, VALUE_RANGE, AugmentationSpec, Drawn, ParamSpec, Revision, layer_seed, register
from .registry import keras as _keras_module

# TrivialAugment's operations: (name, the registry entry that builds it, its parameters). Each runs at its
# strongest; the Keras layer then draws the strength of each image uniformly within that entry's range (its
# `ranges` at this factor): contrast factor in [0.5, 1.5], brightness offset in [-0.3, 0.3], angle up to
# +-30 degrees (the paper's standard space), shift, zoom and shear up to 0.3 of the image.
TRIVIAL_OPS = (
    ("identity", None, None),
    ("flip", "flip", {"mode": "horizontal"}),
    ("contrast", "contrast", {"factor": 0.5}),
    ("brightness", "brightness", {"factor": 0.3}),
    ("rotation", "rotation", {"factor": 30 / 360}),
    ("translation", "warp", {"kind": "translation", "factor": 0.3}),
    ("zoom", "warp", {"kind": "zoom", "factor": 0.3}),
    ("shear", "warp", {"kind": "shear", "factor": 0.3}),
)


def _op_layer(name: str, seed: int):
    """The layer of TrivialAugment's operation `name`, built by the registry entry the operation names."""
    entry, params = next((entry, params) for op, entry, params in TRIVIAL_OPS if op == name)
    return REGISTRY[entry].build(params, seed)


def _define_trivial_augment():
    keras = _keras_module()
    ops = keras.ops

    class TrivialAugment(keras.layers.Layer):
        """One uniformly chosen operation per image at a uniform random strength; identity at inference."""

        def __init__(self, seed=None, **kwargs):
            super().__init__(**kwargs)
            self.seed = seed
            self.seed_generator = keras.random.SeedGenerator(seed)
            base = 0 if seed is None else int(seed)
            self.op_names = [name for name, _, _ in TRIVIAL_OPS]
            self.op_layers = [_op_layer(name, layer_seed(base, name)) for name in self.op_names if name != "identity"]

        def build(self, input_shape):
            for layer in self.op_layers:
                layer.build(input_shape)

        def call(self, inputs, training=None):
            if not training:
                return inputs
            n = ops.shape(inputs)[0]
            choice = keras.random.randint((n,), 0, len(TRIVIAL_OPS), seed=self.seed_generator)
            choice = ops.reshape(choice, (-1, 1, 1, 1))
            out = inputs
            # Every operation runs on the whole batch and each image keeps the one it drew: cheap
            # for small convnets and free of data-dependent control flow (so it compiles anywhere).
            for i, layer in enumerate(self.op_layers, start=1):
                out = ops.where(ops.equal(choice, i), ops.cast(layer(inputs, training=True), out.dtype), out)
            return out

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "seed": self.seed}

    return TrivialAugment


_TRIVIAL_CLASS = None


def TrivialAugment(seed=None, **kwargs):  # noqa: N802 - reads like the Keras layer it builds
    """Build the TrivialAugment-style layer (class defined lazily with Keras)."""
    global _TRIVIAL_CLASS
    if _TRIVIAL_CLASS is None:
        _TRIVIAL_CLASS = _define_trivial_augment()
    return _TRIVIAL_CLASS(seed=seed, **kwargs)


def _randaugment(p, seed):
    return _keras_module().layers.RandAugment(
        value_range=VALUE_RANGE, num_ops=2, factor=p["factor"], seed=seed, name="aug_randaugment"
    )


def _trivialaugment(p, seed):
    return TrivialAugment(seed=seed, name="aug_trivialaugment")


POLICIES = ("randaugment", "trivialaugment")

# Keras's RandAugment, measured (tests/test_augment_ranges.py), not changed: its factor f becomes (0, f) for every
# operation, so the operations augsweep also has draw one-sided ranges.
RANDAUGMENT_RANGES = {"": (
    Drawn("contrast factor", (1.0, 0.0), (1.0, 1.0), note="contrast is only raised"),
    Drawn("brightness offset", (0.0, 0.0), (0.0, 1.0), unit="x the value range (1)", note="only brighter"),
    Drawn("angle", (0.0, 0.0), (0.0, 1.0), unit="turns", note="counter-clockwise only"),
    Drawn("shift right", (0.0, 0.0), (0.0, 1.0), unit="x the width", note="right and down only"),
    Drawn("shift down", (0.0, 0.0), (0.0, 1.0), unit="x the height"),
    Drawn("shear x", (0.0, -1.0), (0.0, 1.0)),
    Drawn("shear y", (0.0, -1.0), (0.0, 1.0)),
)}
TRIVIAL_RANGES = {"": (
    Drawn("operation", (1 / len(TRIVIAL_OPS), 0.0), chance=True,
          note=f"each of {', '.join(name for name, _, _ in TRIVIAL_OPS)}, for each image; then what that "
               "operation's entry draws at the factor TRIVIAL_OPS gives it"),
)}

register(AugmentationSpec(
    "randaugment", {"factor": ParamSpec("float", 0.0, 1.0, default=0.5)}, _randaugment,
    "Keras RandAugment: 2 of its 11 operations (shear, translation, rotation, brightness, color degeneration, "
    "contrast, sharpness, posterization, solarization, auto-contrast, equalization) per batch, the same 2 for every "
    "image of the batch, at strength factor", geometric=True, ranges=RANDAUGMENT_RANGES,
))
register(AugmentationSpec(
    "trivialaugment", {}, _trivialaugment,
    "TrivialAugment-style: one operation per image, uniform strength", geometric=True, ranges=TRIVIAL_RANGES,
    revisions=(Revision(2, "its contrast operation now draws its factor from [0.5, 1.5] (before, [1, 1.5])"),),
))
