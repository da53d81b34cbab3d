"""The experiment file's keys, once: one `Key` per key with its type, range or choices, default, whether it is
part of a study's identity, and whether it was added late (in the spirit of scikit-learn's `_parameter_constraints`).

The table drives `load`'s validation, defaults and allowed-key lists, the dataclass defaults in `schema`,
`Experiment.resolved()`, the study identity (`experiment.identity`), the annotated key list in
docs/experiment-file.md (checked by `tests/test_experiment_keys.py`) and the reference table on that page, which
`docs/gen_reference.py` generates from it when the site is built. What a table cannot say (rules across keys) stays in
`load` as named functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SOURCES = ("digits", "synthetic", "folder", "fashion_mnist")
# fashion_mnist: hold out validation_split of the training split, or the official test split
VALIDATIONS = ("split", "test")
# replicate: each seed replicate draws its own training subsample and validation split from the data (shared by every
# design point of that replicate); none: one split for the whole experiment (the meaning of a file without the key)
RESAMPLES = ("replicate", "none")
SWITCH = ("auto", "true", "false")  # auto | true | false; YAML's true/false are read as "true"/"false"
# Keras applications usable as `model.base` (plus `convnet`, the course's own network).
APPLICATIONS = ("vgg16", "vgg19", "mobilenetv2", "efficientnetb0", "resnet50")
BASES = ("convnet", *APPLICATIONS)
SAMPLERS = ("tpe", "random", "grid", "factorial")
STOPS = ("budget", "decided")  # stop at `trials`, or as soon as every augmentation is decided (factorial)
PRUNERS = ("none", "median", "successive_halving", "hyperband")
ON_BAD_FILE = ("error", "skip")
FASHION_CLASSES = 10

# Kinds of value. CUSTOM: validated by a named function in `load` (a path, a list, a rule across keys).
INT, NUMBER, BOOL, CHOICE, SECTION, CUSTOM = "int", "number", "bool", "choice", "section", "custom"

# How a key added after studies already existed keeps their identity (`Key.late`):
OMITTED = "omitted"  # left out of the resolved experiment (so of sha256 and identity) while at its default
HASHED = "hashed"  # always in the resolved experiment; a study created before it existed stored its identity
#                    without it, so that identity (the key at its default left out) is accepted on resume too

REQUIRED = object()  # no default: the key must be written (`name`, `dataset.source`, `search_space.depth`)


@dataclass(frozen=True)
class Key:
    """One key of the experiment file, by its dotted name (`train.epochs`)."""

    name: str
    kind: str
    default: Any = REQUIRED
    low: float | None = None  # INT/NUMBER bounds; None: unbounded on that side
    high: float | None = None
    low_open: bool = False  # NUMBER: low itself is refused, (low, high]
    choices: tuple = ()  # CHOICE: allowed values, in the order the message lists them
    optional: bool = False  # None (or the key left out) means "not set"
    identity: bool = True  # False: may change when a study is resumed (the budget, the verdict rule, the ablation)
    late: str = ""  # "" (an original key), OMITTED or HASHED: see above

    @property
    def section(self) -> str:
        return self.name.rpartition(".")[0]

    @property
    def leaf(self) -> str:
        return self.name.rpartition(".")[2]


COURSE_FILTERS = 32  # the course's convnet: filters of its first block (doubling)
COURSE_DENSE_UNITS = 6  # the course's convnet: units of its head's Dense layer
DEFAULT_STREAM_THRESHOLD = 2 * 1024**3  # bytes of decoded float32 pixels above which `stream: auto` streams
DEFAULT_MARGIN = 0.02  # validation loss; see docs/method.md ("Verdicts") for why

KEYS = (
    Key("name", CUSTOM),
    Key("description", CUSTOM, default=None, identity=False),  # free text, never stored
    Key("dataset", SECTION),
    Key("dataset.source", CHOICE, choices=SOURCES),
    Key("dataset.image_size", CUSTOM, low=4, high=1024),  # [height, width], each in [low, high]
    Key("dataset.path", CUSTOM, default=None, optional=True),
    Key("dataset.validation_split", NUMBER, default=None, low=0.0, high=0.9, low_open=True, optional=True),
    Key("dataset.samples", INT, default=600, low=20, high=1_000_000),
    Key("dataset.classes", INT, default=2, low=2, high=3),  # fashion_mnist: a list of labels (all 10 by default)
    Key("dataset.on_bad_file", CHOICE, default="error", choices=ON_BAD_FILE),
    Key("dataset.train_samples", INT, default=None, low=2, high=100_000_000, optional=True),
    Key("dataset.val_samples", INT, default=None, low=2, high=100_000_000, optional=True, late=OMITTED),
    Key("dataset.validation", CHOICE, default="split", choices=VALIDATIONS, late=OMITTED),
    Key("dataset.stream", CHOICE, default="auto", choices=SWITCH, late=OMITTED),
    Key("dataset.stream_threshold_bytes", INT, default=DEFAULT_STREAM_THRESHOLD, low=0, late=OMITTED),
    Key("dataset.cache", CUSTOM, default=None, optional=True, late=OMITTED),
    Key("dataset.follow_symlinks", BOOL, default=False, late=OMITTED),
    # source: folder defaults to replicate (`load`); a study stored before the key existed trained on one split
    Key("dataset.resample", CHOICE, default="none", choices=RESAMPLES, late=OMITTED),
    Key("model", SECTION, late=OMITTED),  # the whole section is left out while every key in it is at its default
    Key("model.base", CHOICE, default="convnet", choices=BASES),
    Key("model.weights", CUSTOM, default="none"),
    Key("model.trainable", INT, default=True, low=1, high=10_000),  # or true | false; a base's default is false
    Key("model.depth", INT, default=None, low=1, high=8),  # a convnet base from a weights file
    Key("model.filters", INT, default=COURSE_FILTERS, low=1, high=1024),
    Key("search_space", CUSTOM),  # a path to a YAML file, or the mapping below inline
    Key("search_space.depth", CUSTOM, low=1, high=8),
    Key("search_space.filters", CUSTOM, default=COURSE_FILTERS, low=1, high=1024),
    Key("search_space.dense_units", CUSTOM, default=COURSE_DENSE_UNITS, low=1, high=4096),
    Key("search_space.learning_rate", CUSTOM, default=None, low=0.0, low_open=True, optional=True),
    Key("search_space.augmentations", CUSTOM, default=None),  # names and parameters: `augment.REGISTRY`
    Key("train", SECTION),
    Key("train.epochs", INT, default=10, low=1, high=10_000),
    Key("train.batch_size", INT, default=64, low=1, high=65_536),
    Key("train.learning_rate", NUMBER, default=1e-3, low=0.0, low_open=True),
    Key("train.adam_epsilon", NUMBER, default=0.01, low=0.0, low_open=True),  # the course's Adam(epsilon=0.01)
    Key("train.mixed_precision", BOOL, default=False),
    Key("train.jit_compile", CHOICE, default="auto", choices=SWITCH),
    Key("train.early_stopping", INT, default=0, low=0, high=10_000),  # patience in epochs; 0 = off
    Key("train.reuse_compiled", CHOICE, default="auto", choices=SWITCH, late=HASHED),
    Key("train.deterministic", BOOL, default=True, late=HASHED),
    Key("train.until_converged", SECTION, default=None, optional=True, late=OMITTED),
    Key("train.until_converged.patience", INT, low=1, high=10_000),
    Key("train.until_converged.max_epochs", INT, low=2, high=10_000),
    Key("trials", INT, default=20, low=1, high=100_000, identity=False),
    Key("repeats", INT, default=2, low=1, high=100),
    Key("sampler", CHOICE, default="random", choices=SAMPLERS),
    Key("pruner", CHOICE, default="median", choices=PRUNERS),  # sampler: factorial's default is none
    Key("seed", INT, default=0, low=0, high=2**31 - 1),
    Key("max_consecutive_failures", INT, default=5, low=1, high=10_000, identity=False),
    Key("stop", CHOICE, default="budget", choices=STOPS, identity=False),
    Key("equivalence_margin", NUMBER, default=DEFAULT_MARGIN, low=0.0, low_open=True, identity=False),
    # a fractional design's rows aliased with interactions of three factors or more get verdicts of their own
    Key("assume_no_higher_interactions", BOOL, default=False, identity=False, late=OMITTED),
    Key("ablation", SECTION, identity=False),
    Key("ablation.repeats", INT, default=5, low=1, high=100),
    Key("ablation.base", CUSTOM, default=None, optional=True),  # `best`, or search-space keys with one value each
    Key("ablation.baselines", BOOL, default=True),
)
TABLE = {key.name: key for key in KEYS}


def default(name: str) -> Any:
    """The default of key `name` (what a file that leaves it out gets)."""
    value = TABLE[name].default
    if value is REQUIRED:
        raise KeyError(f"{name} is required: it has no default")
    return value


def allowed(section: str) -> set[str]:
    """The keys a mapping at `section` ("" for the top level) may hold."""
    return {key.leaf for key in KEYS if key.section == section}


def outside_identity() -> list[str]:
    """Top-level keys a study may change when it is resumed."""
    return [key.name for key in KEYS if not key.identity and not key.section]


def late(how: str) -> list[Key]:
    """The keys added late that keep old identities in the way `how` (OMITTED or HASHED)."""
    return [key for key in KEYS if key.late == how]


def resting(key: Key) -> Any:
    """What `key` holds when the file leaves it out: its default, or a section with every key at its default."""
    if key.default is REQUIRED and key.kind == SECTION:
        return {k.leaf: resting(k) for k in KEYS if k.section == key.name}
    return key.default


def lookup(resolved: dict, name: str) -> Any:
    """The value at dotted `name` in a resolved experiment ("" is the whole); None where a part is absent."""
    for part in filter(None, name.split(".")):
        resolved = resolved.get(part) if isinstance(resolved, dict) else None
    return resolved
