"""Augmentation registry: name -> parameter schema + builder of seeded Keras preprocessing layers, what each
layer draws (`Drawn`: the one statement of its ranges, which tests/test_augment_ranges.py measures) and how
its meaning changed (`Revision`: part of the study identity).

Pure data and lookups (no Keras import), so the experiment layer can validate files and
`sweep.py --help` stays fast. The built-in entries live in `layers`, the literature's policies in
`policies`; the package's `__init__` registers both.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

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
class Drawn:
    """A quantity an augmentation draws: uniform in [low, high], each bound `a + b * factor` written (a, b); with
    `chance`, an event (the image is mirrored) that happens with probability `low`.

    `quantity` names what tests/test_augment_ranges.py recovers from the output images to check the range."""

    quantity: str
    low: tuple[float, float]
    high: tuple[float, float] | None = None  # None: the same as low (a fixed value)
    unit: str = ""  # what the numbers are in: "x the value range", "turns", "x the width", ...
    per: str = "image"  # drawn for each image, or once per "batch"
    chance: bool = False
    note: str = ""

    def bounds(self, factor: float = 0.0) -> tuple[float, float]:
        """[low, high] at this `factor`."""
        high = self.high if self.high is not None else self.low
        return self.low[0] + self.low[1] * factor, high[0] + high[1] * factor

    def describe(self) -> str:
        """In words, with f for the factor: `contrast factor in [1 - f, 1 + f]`."""
        if self.chance:
            text = f"{self.quantity} with probability {_linear(self.low)}"
        elif self.high is None or self.high == self.low:
            text = f"{self.quantity} {_linear(self.low)}"
        else:
            text = f"{self.quantity} in [{_linear(self.low)}, {_linear(self.high)}]"
        text += f" {self.unit}" if self.unit else ""
        text += "" if self.per == "image" else f", once per {self.per}"
        return text + (f" ({self.note})" if self.note else "")


def _linear(ab: tuple[float, float]) -> str:
    a, b = ab
    term = "" if b == 0 else ("f" if abs(b) == 1 else f"{abs(b):g}f")
    if not term:
        return f"{a:g}"
    if a == 0:
        return term if b > 0 else f"-{term}"
    return f"{a:g} {'+' if b > 0 else '-'} {term}"


@dataclass(frozen=True)
class Revision:
    """A change of what an augmentation does, made after studies with it existed. It enters the identity of every
    study whose search space holds the augmentation (`revisions`), so a study of the earlier meaning is not resumed
    as this one; 1 is the meaning an entry was registered with."""

    number: int
    change: str  # "its factor is now drawn from ...": what a refused study is told
    choices: tuple[str, ...] = ()  # only where the space offers one of these values of the choice parameter


@dataclass(frozen=True)
class AugmentationSpec:
    """A registry entry: parameter schema plus a builder `(params, seed) -> keras layer`; what the layer draws
    (`ranges`, by the value of the choice parameter, "" when there is none) and how its meaning changed
    (`revisions`)."""

    name: str
    params: Mapping[str, ParamSpec]
    build: Callable[[Mapping[str, Any], int], Any]
    doc: str = ""
    geometric: bool = False  # resamples pixel positions (XLA-incompatible in Keras, see bench/)
    ranges: Mapping[str, tuple[Drawn, ...]] = field(default_factory=dict)
    revisions: tuple[Revision, ...] = ()

    @property
    def choice(self) -> str | None:
        """The name of the parameter that picks a variant (flip's mode, warp's kind), if any."""
        return next((k for k, p in self.params.items() if p.kind == "choice"), None)

    def drawn(self, params: Mapping[str, Any]) -> tuple[Drawn, ...]:
        """What the layer built from `params` draws."""
        return self.ranges[params[self.choice] if self.choice else ""]

    def describe(self) -> str:
        """The doc and, for each variant, what it draws."""
        parts = [f"{key + ': ' if key else ''}{'; '.join(d.describe() for d in drawn)}"
                 for key, drawn in self.ranges.items()]
        return f"{self.name}: {self.doc}" + (f" ({'. '.join(parts)})" if parts else "")

    def revision(self, offered: Sequence[str] = ()) -> int:
        """The revision in force for a space that offers the choice values `offered` (1: never changed)."""
        return max((r.number for r in self.revisions if not r.choices or set(r.choices) & set(offered)), default=1)


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


def _offered(spec: AugmentationSpec, params) -> tuple:
    """The values of `spec`'s choice parameter in `params` (a search space's Choice, a list, or one value)."""
    value = (params or {}).get(spec.choice) if spec.choice else None
    value = getattr(value, "values", value)
    return () if value is None else (value,) if isinstance(value, str) else tuple(value)


def revisions(augmentations: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """The augmentations (name -> parameters, as a search space or a trained configuration holds them) whose
    meaning changed since they were registered, with the revision in force; empty when none did."""
    found = {name: REGISTRY[name].revision(_offered(REGISTRY[name], params))
             for name, params in augmentations.items() if name in REGISTRY}
    return {name: number for name, number in found.items() if number > 1}


def changes(augmentations: Mapping[str, Mapping[str, Any]], before: Mapping[str, int]) -> list[str]:
    """In words, what changed in `augmentations` since the revisions `before` (an augmentation absent from it: 1)."""
    out = []
    for name, params in augmentations.items():
        spec = REGISTRY.get(name)
        if spec is None:
            continue
        offered = _offered(spec, params)
        out += [f"{name}'s meaning changed: {r.change}" for r in spec.revisions
                if r.number > before.get(name, 1) and (not r.choices or set(r.choices) & set(offered))]
    return out
