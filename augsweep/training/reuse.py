"""Reuse of one built, compiled (and traced) model across repeats and trials of one structure.

A fresh repeat costs `clear_session` + build + compile + tracing the train and validation steps before its
first epoch (about 2 s of a 6-epoch digits trial on CPU, more under XLA). When the next repeat needs a network
of the same *structure*, `acquire` instead keeps the model, its optimizer and its traced steps and resets
their state to what a fresh build with the repeat's seeds would hold:

- kernels and biases drawn again by their seeded initialisers (`model.reinitialize_convnet`; seeded Keras
  initialisers are stateless, so the values are the fresh build's bit for bit),
- the optimizer's variables (step count, Adam moments, loss scale) restored to their state right after
  `optimizer.build`, and the learning rate assigned (it is a variable, read by the traced step),
- every augmentation layer's seed-generator state set to `[layer_seed(aug, name), 0]`, what a fresh
  `SeedGenerator(seed)` starts from.

What counts as the structure (the cache key, `structure_key`): backend, dtype policy, deterministic ops (kernels
chosen while tracing may depend on them), input shape, classes, depth, filters, dense units, Adam's epsilon,
`jit_compile`, the augmentations in the model **with all their parameters, magnitudes included**. Keras's random
preprocessing layers keep their factors as Python floats and read them while the step is traced, so a factor
changed on a built layer is baked into the traced graph under TensorFlow and JAX alike: the old magnitude would
silently keep running. Keying on the magnitudes is the only option that stays correct on every backend without
rewriting Keras's layers, so a reused model is
found for the repeats of one trial (repeats 2..R), for ablation variants' seeds, and for trials that repeat a
configuration exactly (factorial/grid designs, no augmentation); a new magnitude builds afresh.

One model is cached (the latest structure), so memory stays flat: a different structure clears the Keras
session as before. Only the plain convnet is reused (a base's weights come from files or ImageNet); anything
`reinitialize_convnet` cannot reset, or a training that raised, falls back to a fresh build.
`tests/test_training_reuse.py` checks that a reused model's history equals a fresh build's to 1e-6.

Backends (`train.reuse_compiled`: auto | true | false). `auto` reuses on TensorFlow only, where the
equality holds: the input pipeline is augsweep's own seeded `tf.data` shuffle. On JAX (and torch) Keras
feeds the arrays itself, and a model's *first* `fit` peeks one batch to build its metrics, drawing one extra
NumPy permutation before the first epoch; a reused model skips the peek, so its batch order differs from a
fresh build's (measured: max |Δ| 1.6e-3 in a 2-epoch history; one extra `np.random.permutation` restores
equality, which shows the cause but would tie augsweep to a Keras internal). `true` reuses there anyway (the
same seeded initial state, another batch order: for speed, not for `--reproduce`); `false` always builds
afresh (the behaviour before reuse).
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..augment import build_order, layer_seed
from .model import reinitialize_convnet

SETTINGS = ("auto", "true", "false")
EXACT_BACKENDS = ("tensorflow",)  # where a reused model's history is tested equal to a fresh build's


def enabled(setting: str, backend: str) -> bool:
    """`train.reuse_compiled`: `auto` reuses where it is exact (TensorFlow), `true` everywhere, `false` never."""
    if setting not in SETTINGS:
        raise ValueError(f"reuse_compiled must be one of {SETTINGS}. Received: reuse_compiled={setting!r}")
    return setting == "true" or (setting == "auto" and backend in EXACT_BACKENDS)


_CACHE: dict = {}  # "key", "model", "optimizer_state", "augmentations" (name -> layer)


def clear() -> None:
    """Forget the cached model (after `clear_session`, a failure, or to force the next build to be fresh)."""
    _CACHE.clear()


def cached_model():
    """The cached model, or None."""
    return _CACHE.get("model")


def structure_key(config, dataset, settings, in_model: Sequence[str], model_cfg, backend: str, dtype_policy: str,
                  deterministic: bool = False):
    """What two repeats must share to train the same compiled model (see the module docstring)."""
    augs = tuple((n, tuple(sorted(config.enabled[n].items()))) for n in build_order(list(in_model)))
    return (backend, dtype_policy, model_cfg, tuple(dataset.input_shape), int(dataset.num_classes),
            config.depth, config.filters, config.dense_units, augs, settings.adam_epsilon, settings.jit_compile,
            deterministic)


def _seed_generators(layer) -> list:
    out = []
    for sub in layer._flatten_layers(include_self=True):
        out += list(getattr(sub, "_seed_generators", ()))
    return out


def _reset(entry: dict, seeds, learning_rate: float) -> bool:
    """Put the cached model in a fresh build's state for `seeds`; False if it cannot."""
    import keras

    net = entry["model"]
    for name, layer in entry["augmentations"].items():
        old = getattr(layer, "seed", None)
        generators = _seed_generators(layer)
        if old is None or any(sg._initial_seed != old for sg in generators):
            return False  # a generator seeded otherwise than the layer: no known fresh state
    if not reinitialize_convnet(net, seeds.init):
        return False
    for name, layer in entry["augmentations"].items():
        seed = layer_seed(seeds.aug, name)
        for sub in layer._flatten_layers(include_self=True):
            if hasattr(sub, "seed"):
                sub.seed = seed
        for sg in _seed_generators(layer):
            sg._initial_seed = seed
            sg.state.assign(keras.ops.convert_to_tensor([seed, 0], dtype=sg.state.dtype))
    for var, value in zip(net.optimizer.variables, entry["optimizer_state"]):
        var.assign(value)
    net.optimizer.learning_rate = learning_rate
    return True


def acquire(key, seeds, learning_rate: float, build: Callable[[], object], augmentation_names: Sequence[str]):
    """(model, reused): the cached model reset for `seeds` when `key` matches, else `build()` (which clears
    the Keras session) cached under `key`."""
    import numpy as np

    entry = _CACHE
    if entry.get("key") == key and _reset(entry, seeds, learning_rate):
        return entry["model"], True
    clear()
    net = build()
    if not getattr(net.optimizer, "built", False):
        net.optimizer.build(net.trainable_variables)  # what Keras does before the first step; done here to snapshot
    state = [np.array(keras_value(v)) for v in net.optimizer.variables]
    by_name = {layer.name: layer for layer in net.layers}
    augmentations = {n: by_name[f"aug_{n}"] for n in augmentation_names if f"aug_{n}" in by_name}
    if len(augmentations) != len(augmentation_names):
        return net, False  # layers named otherwise (a registered plug-in): train it, do not cache it
    _CACHE.update(key=key, model=net, optimizer_state=state, augmentations=augmentations)
    return net, False


def keras_value(variable):
    """A variable's value as NumPy."""
    import keras

    return keras.ops.convert_to_numpy(variable.value)
