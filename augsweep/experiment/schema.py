"""What an experiment is: frozen dataclasses for the experiment, its dataset, training and search space.

`load` builds them from YAML; everything else reads them. `ConfigError` is bad user input.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import yaml

from ..runtime import UserError



class ConfigError(UserError):
    """Bad user input: the CLI prints the message on one line and exits with code 2."""


SOURCES = ("digits", "synthetic", "folder", "fashion_mnist")
VALIDATIONS = ("split", "test")  # fashion_mnist: hold out validation_split of the training split, or the official test split
STREAMS = ("auto", "true", "false")  # folder: stream from disk with tf.data, keep in memory, or choose by size
DEFAULT_STREAM_THRESHOLD = 2 * 1024**3  # bytes of decoded float32 pixels above which `stream: auto` streams
# Keras applications usable as `model.base` (plus `convnet`, the course's own network).
APPLICATIONS = ("vgg16", "vgg19", "mobilenetv2", "efficientnetb0", "resnet50")
BASES = ("convnet", *APPLICATIONS)
SAMPLERS = ("tpe", "random", "grid", "factorial")
STOPS = ("budget", "decided")  # stop at `trials`, or as soon as every augmentation is decided (factorial)
DEFAULT_MARGIN = 0.02  # validation loss; see README "Verdicts" for why
PRUNERS = ("none", "median", "successive_halving", "hyperband")
ON_BAD_FILE = ("error", "skip")


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
    filters: Choice = Choice((32,))
    dense_units: Choice = Choice((6,))
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
    path: str | None = None
    validation_split: float | None = None
    samples: int = 600  # synthetic: images in total (train + validation)
    classes: int | tuple[int, ...] = 2  # synthetic: 2 (car, truck) or 3 (+ bus); fashion_mnist: label subset
    on_bad_file: str = "error"
    train_samples: int | None = None  # a stratified, seeded subsample of the training split (None: all)
    val_samples: int | None = None  # the same for the validation split
    validation: str = "split"  # fashion_mnist: split | test (the official 10,000-image test split)
    stream: str = "auto"  # folder: auto | true | false
    stream_threshold_bytes: int = DEFAULT_STREAM_THRESHOLD
    cache: str | None = None  # folder, streaming: a file for the decoded pixels (written once, then read)
    follow_symlinks: bool = False  # folder: follow links that point outside dataset.path (refused otherwise)


# Keys added after studies already existed: left out of the resolved experiment at their defaults, so the
# identity of an existing study (a hash of the resolved experiment) does not change under it.
_LATE_DEFAULTS = {"val_samples": None, "validation": "split", "stream": "auto",
                  "stream_threshold_bytes": DEFAULT_STREAM_THRESHOLD, "cache": None, "follow_symlinks": False}


@dataclass(frozen=True)
class ModelConfig:
    """The network: the course's convnet (default) or a pretrained base with the course's head.

    `weights`: none | imagenet | a path to a `.weights.h5`/`.keras` file; `trainable`: True (all),
    False (frozen base, the course's choice) or N (the top N layers of the base that have weights).
    `depth`/`filters` describe a convnet base loaded from a weights file (the search space's depth is
    not searched when a base is used).
    """

    base: str = "convnet"
    weights: str = "none"
    trainable: bool | int = True
    depth: int | None = None
    filters: int = 32

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

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    adam_epsilon: float = 0.01  # the course's Adam(epsilon=0.01)
    mixed_precision: bool = False
    jit_compile: str = "auto"  # auto | true | false
    early_stopping: int = 0  # patience in epochs; 0 = off
    reuse_compiled: str = "auto"  # auto | true | false: reuse one compiled model per structure (training.reuse)
    deterministic: bool = True  # deterministic ops (runtime.set_determinism): `--reproduce` matches to 1e-5
    until_converged: Convergence | None = None  # None: the fixed budget of `epochs`


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

    repeats: int = 5
    base: BaseConfig | None = None
    baselines: bool = True  # also train RandAugment and TrivialAugment-style on the base's network


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file."""

    name: str
    dataset: DatasetConfig
    search_space: SearchSpace
    train: TrainConfig = TrainConfig()
    trials: int = 20
    repeats: int = 2
    sampler: str = "random"
    pruner: str = "median"
    seed: int = 0
    max_consecutive_failures: int = 5
    stop: str = "budget"
    equivalence_margin: float = DEFAULT_MARGIN  # |effect| below this is negligible
    ablation: AblationConfig = AblationConfig()
    model: ModelConfig = ModelConfig()
    path: str = ""
    search_space_path: str | None = None

    def resolved(self) -> dict[str, Any]:
        """Everything that defines the experiment, with defaults filled in (for the MLflow artifact)."""
        d = asdict(self)
        d.pop("path")
        for key, default in _LATE_DEFAULTS.items():
            if d["dataset"].get(key) == default:
                d["dataset"].pop(key)
        if self.model == ModelConfig():
            d.pop("model")
        if d["train"].get("until_converged") is None:  # added later: absent keeps old studies' identity
            d["train"].pop("until_converged", None)
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
