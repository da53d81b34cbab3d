"""What an experiment is: frozen dataclasses for the experiment, its dataset, training and search space.

`load` builds them from YAML; everything else reads them. Their defaults come from the key table (`keys`).
`ConfigError` is bad user input.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import yaml

from ..runtime import UserError
from .keys import OMITTED, default, late, lookup, resting


class ConfigError(UserError):
    """Bad user input: the CLI prints the message on one line and exits with code 2."""




@dataclass(frozen=True)
class IntRange:
    """Integers low..high inclusive."""

    low: int
    high: int

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1))

    def midpoint(self) -> int:
        return (self.low + self.high) // 2


@dataclass(frozen=True)
class FloatRange:
    """Floats in [low, high]; `log` samples on a log scale."""

    low: float
    high: float
    log: bool = False

    def midpoint(self) -> float:
        if self.log:
            return float(math.sqrt(self.low * self.high))
        return (self.low + self.high) / 2


@dataclass(frozen=True)
class Choice:
    """One of a fixed list of values (a single value means fixed)."""

    values: tuple

    def midpoint(self):
        """Strings (a kind, a mode): the first listed; numbers: the median listed value."""
        if isinstance(self.values[0], str):
            return self.values[0]
        return sorted(self.values)[(len(self.values) - 1) // 2]


@dataclass(frozen=True)
class SearchSpace:
    """What Optuna may vary: depth, optional width/lr, and each augmentation's magnitudes."""

    depth: IntRange | Choice
    filters: Choice = Choice((default("search_space.filters"),))
    dense_units: Choice = Choice((default("search_space.dense_units"),))
    learning_rate: FloatRange | Choice | None = None  # None: train.learning_rate, not searched
    augmentations: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def augmentation_params(self) -> dict[str, dict[str, Any]]:
        """Augmentation name -> {param: IntRange/FloatRange/Choice}."""
        return {name: dict(params) for name, params in self.augmentations}

    @property
    def augmentation_names(self) -> list[str]:
        return [name for name, _ in self.augmentations]


@dataclass(frozen=True)
class DatasetConfig:
    """Which images to train on and at what size."""

    source: str
    image_size: tuple[int, int]
    path: str | None = default("dataset.path")
    validation_split: float | None = default("dataset.validation_split")
    samples: int = default("dataset.samples")  # synthetic: images in total (train + validation)
    classes: int | tuple[int, ...] = default("dataset.classes")  # synthetic: 2 or 3; fashion_mnist: labels
    on_bad_file: str = default("dataset.on_bad_file")
    train_samples: int | None = default("dataset.train_samples")  # a stratified, seeded subsample (None: all)
    val_samples: int | None = default("dataset.val_samples")  # the same for the validation split
    validation: str = default("dataset.validation")  # fashion_mnist: split | test (official)
    stream: str = default("dataset.stream")  # folder: auto | true | false
    stream_threshold_bytes: int = default("dataset.stream_threshold_bytes")
    cache: str | None = default("dataset.cache")  # folder, streaming: decoded pixels' file
    follow_symlinks: bool = default("dataset.follow_symlinks")  # folder: links out of dataset.path
    resample: str = default("dataset.resample")  # replicate: a split per seed replicate | none: one split


@dataclass(frozen=True)
class ModelConfig:
    """The network: the course's convnet (default) or a pretrained base with the course's head.

    `weights`: none | imagenet | a path to a `.weights.h5`/`.keras` file; `trainable`: True (all),
    False (frozen base, the course's choice) or N (the top N layers of the base that have weights).
    `depth`/`filters` describe a convnet base loaded from a weights file (the search space's depth is
    not searched when a base is used).
    """

    base: str = default("model.base")
    weights: str = default("model.weights")
    trainable: bool | int = default("model.trainable")
    depth: int | None = default("model.depth")
    filters: int = default("model.filters")

    @property
    def uses_base(self) -> bool:
        """A pretrained or application base: depth is fixed by the base, not searched."""
        return self.base != "convnet" or self.weights != "none"


@dataclass(frozen=True)
class Convergence:
    """`train.until_converged`: train until val_loss has not improved for `patience` epochs (Keras
    EarlyStopping), at most `max_epochs`; the outcome is the converged best. A training that reaches the cap
    without `patience` epochs since its best is unconverged (counted in the report)."""

    patience: int
    max_epochs: int


@dataclass(frozen=True)
class TrainConfig:
    """How each repeat of a trial trains (`epochs` is the cap when `until_converged` is set)."""

    epochs: int = default("train.epochs")
    batch_size: int = default("train.batch_size")
    learning_rate: float = default("train.learning_rate")
    adam_epsilon: float = default("train.adam_epsilon")  # the course's Adam(epsilon=0.01)
    mixed_precision: bool = default("train.mixed_precision")
    jit_compile: str = default("train.jit_compile")  # auto | true | false
    early_stopping: int = default("train.early_stopping")  # patience in epochs; 0 = off
    reuse_compiled: str = default("train.reuse_compiled")  # auto | true | false (training.reuse)
    deterministic: bool = default("train.deterministic")  # runtime.set_determinism
    until_converged: Convergence | None = default("train.until_converged")  # None: the fixed budget of `epochs`


@dataclass(frozen=True)
class BaseConfig:
    """A fixed configuration to ablate around (`ablation.base`): one value per parameter."""

    depth: int
    filters: int | None = None  # None: the search space's (midpoint) value
    dense_units: int | None = None
    learning_rate: float | None = None  # None: train.learning_rate
    augmentations: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()


@dataclass(frozen=True)
class AblationConfig:
    """How `sweep.py --ablation` runs: seeds per variant, and the base (None: the sweep's best trial)."""

    repeats: int = default("ablation.repeats")
    base: BaseConfig | None = default("ablation.base")
    baselines: bool = default("ablation.baselines")  # RandAugment, TrivialAugment-style


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file."""

    name: str
    dataset: DatasetConfig
    search_space: SearchSpace
    train: TrainConfig = TrainConfig()
    trials: int = default("trials")
    repeats: int = default("repeats")
    sampler: str = default("sampler")
    pruner: str = default("pruner")
    seed: int = default("seed")
    max_consecutive_failures: int = default("max_consecutive_failures")
    stop: str = default("stop")
    equivalence_margin: float = default("equivalence_margin")  # |effect| below this is negligible
    # rows aliased only with interactions of three factors or more (a fraction's aug x depth, pairs) get verdicts
    assume_no_higher_interactions: bool = default("assume_no_higher_interactions")
    ablation: AblationConfig = AblationConfig()
    model: ModelConfig = ModelConfig()
    path: str = ""
    search_space_path: str | None = None

    def resolved(self) -> dict[str, Any]:
        """Everything that defines the experiment, with defaults filled in (for the MLflow artifact)."""
        d = asdict(self)
        d.pop("path")
        for key in late(OMITTED):  # added after studies existed: absent at its default keeps their identity
            section = lookup(d, key.section)
            if isinstance(section, dict) and key.leaf in section and section[key.leaf] == resting(key):
                section.pop(key.leaf)
        d["search_space"] = space_to_dict(self.search_space)
        return _plain(d)

    def sha256(self) -> str:
        """Hash of the resolved experiment, stable across key order and formatting."""
        text = yaml.safe_dump(self.resolved(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _plain(obj):
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """The search space back as plain YAML-able data."""

    def one(p):
        if isinstance(p, IntRange):
            return {"low": p.low, "high": p.high}
        if isinstance(p, FloatRange):
            return {"low": p.low, "high": p.high, **({"log": True} if p.log else {})}
        if isinstance(p, Choice):
            return list(p.values)
        return p

    out: dict[str, Any] = {"depth": one(space.depth)}
    out["filters"] = one(space.filters)
    out["dense_units"] = one(space.dense_units)
    if space.learning_rate is not None:
        out["learning_rate"] = one(space.learning_rate)
    out["augmentations"] = {
        name: {k: (list(v) if isinstance(v, tuple) else one(v)) for k, v in params}
        for name, params in space.augmentations
    }
    return out


def max_depth(image_size) -> int:
    """Deepest stack of 2x2 max-pools that leaves at least a 1x1 feature map."""
    side, depth = min(image_size), 0
    while side >= 2:
        side //= 2
        depth += 1
    return depth
