"""Standard augmentation policies from the literature, as registry entries an ablation compares against.

- `randaugment`: Keras's `RandAugment` (Cubuk et al., 2020): `num_ops` transformations drawn per
  batch, all at one strength `factor`.
- `trivialaugment`: TrivialAugment-style (Müller & Hutter, 2021): for each image, one transformation
  chosen uniformly from identity and the registry's flip, contrast, brightness, rotation and warps,
  at a strength drawn uniformly up to that transformation's maximum (Keras random layers draw a
  per-image magnitude uniformly in [-max, max]).

Both are training-only layers, like every other registry entry, so they run inside the model.
Registering them also lets a search space switch them on and off like any augmentation.
"""

from __future__ import annotations

from .registry import VALUE_RANGE, AugmentationSpec, ParamSpec, keras as _keras_module, layer_seed, register

# Maximum strengths for TrivialAugment's operations, in the Keras layers' units: fractions of
# the image size (translation, zoom, shear), of a full turn (rotation: 30 degrees as in the
# paper's standard space) or of the value range (contrast, brightness).
TRIVIAL_OPS = (
    ("identity", None),
    ("flip", None),
    ("contrast", 0.5),
    ("brightness", 0.3),
    ("rotation", 30 / 360),
    ("translation", 0.3),
    ("zoom", 0.3),
    ("shear", 0.3),
)


def _op_layer(name: str, strength, seed: int):
    layers = _keras_module().layers
    if name == "flip":
        return layers.RandomFlip("horizontal", seed=seed)
    if name == "contrast":
        return layers.RandomContrast(strength, value_range=VALUE_RANGE, seed=seed)
    if name == "brightness":
        return layers.RandomBrightness(strength, value_range=VALUE_RANGE, seed=seed)
    if name == "rotation":
        return layers.RandomRotation(strength, seed=seed)
    if name == "translation":
        return layers.RandomTranslation(strength, strength, seed=seed)
    if name == "zoom":
        return layers.RandomZoom(strength, seed=seed)
    if name == "shear":
        return layers.RandomShear(x_factor=strength, y_factor=strength, seed=seed)
    raise ValueError(f"unknown TrivialAugment operation {name!r}")


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
            self.op_names = [name for name, _ in TRIVIAL_OPS]
            self.op_layers = [
                _op_layer(name, strength, layer_seed(base, name))
                for name, strength in TRIVIAL_OPS if name != "identity"
            ]

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

register(AugmentationSpec(
    "randaugment", {"factor": ParamSpec("float", 0.0, 1.0, default=0.5)}, _randaugment,
    "Keras RandAugment: 2 operations per batch at strength factor", geometric=True,
))
register(AugmentationSpec(
    "trivialaugment", {}, _trivialaugment,
    "TrivialAugment-style: one operation per image, uniform strength", geometric=True,
))
