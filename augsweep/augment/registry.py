"""Augmentation registry: name -> parameter schema + builder of seeded Keras preprocessing layers.

Pure data and lookups (no Keras import), so the experiment layer can validate files and
`sweep.py --help` stays fast. The built-in entries live in `layers`, the literature's policies in
`policies`; the package's `__init__` registers both.
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


def keras():
    """The `keras` module, imported on first use (keeps validation and `--help` free of TensorFlow)."""
    import keras as _k

    return _k


REGISTRY: dict[str, AugmentationSpec] = {}


def register(spec: AugmentationSpec) -> AugmentationSpec:
    """Add (or replace) a registry entry; tests use this to plant a failing augmentation."""
    REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registry entry added with `register`."""
    REGISTRY.pop(name, None)


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
