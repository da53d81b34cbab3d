"""Experiment and search-space files: `yaml.safe_load`, validated into the `schema` dataclasses.

Which keys exist, their types, ranges, choices and defaults come from the key table (`keys.TABLE`, read by
`_Ctx.key`); rules across keys (a key only used with one source, a pruner that sampler: factorial refuses) are
the named functions here.

Every rejection is a `ConfigError` whose message is one line in the Keras style, naming the key,
what was expected, what was received and the file:
`rotation.factor must be in (0, 1]. Received: factor=1.7 (experiments/x.yaml)`. One module over 400 lines on
purpose: each rule across keys sits beside the parsing it guards, in the order a file is read.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..augment import REGISTRY, ParamSpec
from ..runtime import one_line, shown
from .keys import APPLICATIONS, BOOL, CHOICE, FASHION_CLASSES, INT, NUMBER, SOURCES, SWITCH, TABLE, allowed, default
from .schema import (
    AblationConfig,
    BaseConfig,
    Choice,
    ConfigError,
    Convergence,
    DatasetConfig,
    Experiment,
    FloatRange,
    IntRange,
    ModelConfig,
    SearchSpace,
    TrainConfig,
    max_depth,
)

# ----------------------------------------------------------------------------- validation helpers

_MISSING = object()


class _Ctx:
    """Carries the file name into every message."""

    def __init__(self, file: str):
        self.file = file

    def fail(self, key: str, what: str, received: Any) -> ConfigError:
        leaf = key.rsplit(".", 1)[-1]
        return ConfigError(f"{key} {what}. Received: {leaf}={shown(received)} ({self.file})")

    def mapping(self, value: Any, key: str) -> Mapping:
        if not isinstance(value, Mapping):
            raise self.fail(key, "must be a mapping", value)
        return value

    def no_unknown(self, value: Mapping, allowed, key: str) -> None:
        for k in value:
            if k not in allowed:
                name = _shown(k)  # a key holding a line break must not split the one-line message
                name = name if len(name) <= 80 else f"{name[:79]}…"
                where = f"{key}.{name}" if key else name
                # The value is not shown: an unknown key's value may be anything the file holds (a token).
                raise ConfigError(f"{where} is not a known key; expected one of {sorted(allowed)}. "
                                  f"Received: {name} ({self.file})")

    def integer(self, value: Any, key: str, low: int | None = None, high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "must be an integer", value)
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
            raise self.fail(key, f"must be in {bounds}" if high is not None else f"must be {bounds}", value)
        return value

    def number(self, value: Any, key: str, low: float | None = None, high: float | None = None,
               low_open: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, "must be a finite number", value)
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and value > high
        if too_low or too_high:
            lo = "(" if low_open else "["
            raise self.fail(key, f"must be in {lo}{low:g}, {high:g}]" if high is not None
                            else f"must be {'>' if low_open else '>='} {low:g}", value)
        return float(value)

    def choice(self, value: Any, key: str, allowed) -> str:
        if value not in allowed:
            raise self.fail(key, f"must be one of {list(allowed)}", value)
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false", value)
        return value

    def key(self, data: Mapping, name: str, value: Any = _MISSING) -> Any:
        """Table key `name` from the mapping `data` (`value` instead, when given; its default when absent), checked
        against the table's kind, range or choices."""
        spec = TABLE[name]
        if value is _MISSING:
            value = data[spec.leaf] if spec.leaf in data else default(name)
        if value is None and spec.optional:
            return None
        if spec.kind == INT:
            return self.integer(value, name, spec.low, spec.high)
        if spec.kind == NUMBER:
            return self.number(value, name, spec.low, spec.high, low_open=spec.low_open)
        if spec.kind == BOOL:
            return self.boolean(value, name)
        if spec.kind == CHOICE:
            if spec.choices == SWITCH and isinstance(value, bool):
                value = "true" if value else "false"
            return self.choice(value, name, spec.choices)
        raise TypeError(f"{name} is a {spec.kind} key: its own function checks it")


def _bounds(name: str) -> tuple:
    """(low, high) of a table key whose value a custom function checks (a search-space list, a range)."""
    return TABLE[name].low, TABLE[name].high


# ----------------------------------------------------------------------------- search space


def _int_param(ctx: _Ctx, value: Any, key: str, low: int, high: int) -> IntRange | Choice:
    if isinstance(value, Mapping):
        ctx.no_unknown(value, {"low", "high"}, key)
        for k in ("low", "high"):
            if k not in value:
                raise ctx.fail(f"{key}.{k}", "is required", None)
        lo = ctx.integer(value["low"], f"{key}.low", low, high)
        hi = ctx.integer(value["high"], f"{key}.high", low, high)
        if hi < lo:
            raise ctx.fail(f"{key}.high", f"must be >= {key}.low ({lo})", hi)
        return IntRange(lo, hi)
    if isinstance(value, list):
        if not value:
            raise ctx.fail(key, "must list at least one value", value)
        return Choice(tuple(ctx.integer(v, key, low, high) for v in value))
    return Choice((ctx.integer(value, key, low, high),))


def _lr_param(ctx: _Ctx, value: Any, key: str) -> FloatRange | Choice:
    if isinstance(value, Mapping):
        ctx.no_unknown(value, {"low", "high", "log"}, key)
        for k in ("low", "high"):
            if k not in value:
                raise ctx.fail(f"{key}.{k}", "is required", None)
        lo = ctx.number(value["low"], f"{key}.low", 0.0, None, low_open=True)
        hi = ctx.number(value["high"], f"{key}.high", 0.0, None, low_open=True)
        if hi < lo:
            raise ctx.fail(f"{key}.high", f"must be >= {key}.low ({lo})", hi)
        log = ctx.boolean(value.get("log", True), f"{key}.log")
        return FloatRange(lo, hi, log)
    if isinstance(value, list):
        if not value:
            raise ctx.fail(key, "must list at least one value", value)
        return Choice(tuple(ctx.number(v, key, 0.0, None, low_open=True) for v in value))
    return Choice((ctx.number(value, key, 0.0, None, low_open=True),))


def _aug_param(ctx: _Ctx, spec: ParamSpec, value: Any, key: str):
    leaf_range = f"({spec.low:g}, {spec.high:g}]"
    if spec.kind == "choice":
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ctx.fail(key, f"must list at least one of {list(spec.choices)}", value)
        for v in values:
            if v not in spec.choices:
                raise ctx.fail(key, f"must be one of {list(spec.choices)}", v)
        return Choice(tuple(dict.fromkeys(values)))
    if isinstance(value, list):
        if len(value) != 2:
            raise ctx.fail(key, f"must be a number or a [low, high] range in {leaf_range}", value)
        lo, hi = (ctx.number(v, key, spec.low, spec.high, low_open=True) for v in value)
        if hi < lo:
            raise ctx.fail(key, "must be a [low, high] range with low <= high", value)
        return FloatRange(lo, hi) if hi > lo else Choice((lo,))
    v = ctx.number(value, key, spec.low, spec.high, low_open=True)
    return Choice((v,))


def _default_param(spec: ParamSpec):
    d = spec.default
    if spec.kind == "choice":
        return Choice(tuple(d))
    return FloatRange(*d) if isinstance(d, tuple) else Choice((d,))


def _augmentations(ctx: _Ctx, raw: Any, prefix: str, param) -> tuple:
    """An `augmentations` mapping: known names and parameter keys; `param(spec, value or _MISSING, key)`
    turns each parameter into what the caller keeps (a searchable range, or one fixed value)."""
    raw = ctx.mapping({} if raw is None else raw, f"{prefix}augmentations")
    out = []
    for name, params in raw.items():
        if name not in REGISTRY:
            raise ConfigError(
                f"{prefix}augmentations.{name} is not a known augmentation; expected one of "
                f"{sorted(REGISTRY)}. Received: {shown(name)} ({ctx.file})"
            )
        spec = REGISTRY[name]
        params = {} if params is None else ctx.mapping(params, f"{prefix}{name}")
        ctx.no_unknown(params, set(spec.params), f"{prefix}{name}")
        out.append((name, tuple((pname, param(pspec, params.get(pname, _MISSING), f"{prefix}{name}.{pname}"))
                                for pname, pspec in spec.params.items())))
    return tuple(out)


def parse_search_space(data: Any, file: str, base: str | None = None) -> SearchSpace:
    """Validate a search-space mapping (from a file or inline) into a `SearchSpace`.

    `base` (a pretrained or application base, see `ModelConfig.uses_base`): depth and filters belong to
    the base, so they are not searched; depth is fixed at 0 ("the base's").
    """
    ctx = _Ctx(file)
    data = ctx.mapping(data, "search_space")
    ctx.no_unknown(data, allowed("search_space"), "search_space")
    if base is not None:
        for key in ("depth", "filters"):
            if key in data:
                raise ctx.fail(key, f"is not searched with a pretrained base (model.base: {base}); remove it",
                               data[key])
        depth = Choice((0,))
    elif "depth" not in data:
        raise ctx.fail("search_space.depth", "is required", None)
    else:
        depth = _int_param(ctx, data["depth"], "depth", *_bounds("search_space.depth"))
    filters = _int_param(ctx, data.get("filters", default("search_space.filters")), "filters",
                         *_bounds("search_space.filters"))
    dense = _int_param(ctx, data.get("dense_units", default("search_space.dense_units")), "dense_units",
                       *_bounds("search_space.dense_units"))
    for name, p in (("filters", filters), ("dense_units", dense)):
        if isinstance(p, IntRange):
            raise ctx.fail(name, "must be a number or a list of values, not a range", data[name])
    lr = _lr_param(ctx, data["learning_rate"], "learning_rate") if "learning_rate" in data else None

    def param(spec: ParamSpec, value: Any, key: str):
        return _default_param(spec) if value is _MISSING else _aug_param(ctx, spec, value, key)

    augs = _augmentations(ctx, data.get("augmentations"), "", param)
    return SearchSpace(depth, filters, dense, lr, augs)


# ----------------------------------------------------------------------------- experiment


MAX_PATH_CHARS, NAME_MAX = 4096, 255  # Linux's PATH_MAX and the longest name of one folder or file


def _usable_path(value: str, key: str, experiment_file: Path | str) -> str:
    """`value` if the system can look it up at all (no NUL byte, not over PATH_MAX, no name over NAME_MAX)."""
    if "\0" in value or len(value) > MAX_PATH_CHARS or any(len(part.encode("utf-8", "surrogatepass")) > NAME_MAX
                                                          for part in Path(value).parts):
        raise ConfigError(f"{key} is not a usable path (a NUL byte, over {MAX_PATH_CHARS} characters, or a name over "
                          f"{NAME_MAX} bytes). Received: {shown(value)} ({experiment_file})")
    return value


def _resolve_path(value: str, experiment_file: Path, key: str) -> Path:
    """A relative path is tried from the current directory, then beside the experiment file."""
    p = Path(_usable_path(value, key, experiment_file)).expanduser()
    if p.is_absolute() or p.exists():
        return p
    beside = experiment_file.parent / p
    return beside if beside.exists() else p


def _dataset(ctx: _Ctx, data: Any, experiment_file: Path) -> DatasetConfig:
    data = ctx.mapping(data, "dataset")
    ctx.no_unknown(data, allowed("dataset"), "dataset")
    if "source" not in data:
        raise ctx.fail("dataset.source", f"is required (one of {list(SOURCES)})", None)
    source = ctx.key(data, "dataset.source")
    size, (low, high) = data.get("image_size"), _bounds("dataset.image_size")
    if (not isinstance(size, list) or len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high for v in size)):
        raise ctx.fail("dataset.image_size", f"must be [height, width] with integers in [{low}, {high}]", size)
    path = data.get("path")
    if source in ("folder", "fashion_mnist"):
        if source == "folder" and (not isinstance(path, str) or not path):
            raise ctx.fail("dataset.path", "is required for source: folder and must be a string", path)
        if path is not None:  # fashion_mnist: a folder of IDX files (default: data/fashion-mnist, the system copy)
            if not isinstance(path, str) or not path:
                raise ctx.fail("dataset.path", "must be a folder path", path)
            path = str(_resolve_path(path, experiment_file, "dataset.path"))
    elif path is not None:
        raise ctx.fail("dataset.path", f"is only used with source: folder or fashion_mnist (source is {source})",
                       path)
    split = ctx.key(data, "dataset.validation_split")
    samples = ctx.key(data, "dataset.samples")
    if source == "fashion_mnist":
        classes = _class_subset(ctx, data.get("classes", list(range(FASHION_CLASSES))))
    else:
        classes = ctx.key(data, "dataset.classes")
    on_bad = ctx.key(data, "dataset.on_bad_file")
    train_samples, val_samples = ctx.key(data, "dataset.train_samples"), ctx.key(data, "dataset.val_samples")
    validation = ctx.key(data, "dataset.validation")
    if validation == "test" and source != "fashion_mnist":
        raise ctx.fail("dataset.validation", f"test is only available with source: fashion_mnist (source is "
                                             f"{source})", validation)
    if validation == "test" and split is not None:
        raise ctx.fail("dataset.validation_split", "is not used with validation: test", split)
    stream = ctx.key(data, "dataset.stream")
    threshold = ctx.key(data, "dataset.stream_threshold_bytes")
    cache = data.get("cache")
    for key in ("stream", "stream_threshold_bytes", "cache"):
        if key in data and source != "folder":
            raise ctx.fail(f"dataset.{key}", f"is only used with source: folder (source is {source})", data[key])
    if cache is not None:
        if not isinstance(cache, str) or not cache:
            raise ctx.fail("dataset.cache", "must be a file path", cache)
        cache = str(Path(_usable_path(cache, "dataset.cache", experiment_file)).expanduser())
    follow = ctx.key(data, "dataset.follow_symlinks")
    if "follow_symlinks" in data and source != "folder":
        raise ctx.fail("dataset.follow_symlinks", f"is only used with source: folder (source is {source})", follow)
    # Your own images are a sample of a task, so by default each seed replicate draws its own split of them.
    resample = ctx.key(data, "dataset.resample", data.get("resample", "replicate" if source == "folder"
                                                          else default("dataset.resample")))
    return DatasetConfig(source, (size[0], size[1]), path, split, samples, classes, on_bad, train_samples,
                         val_samples, validation, stream, threshold, cache, follow, resample)


def _class_subset(ctx: _Ctx, value: Any) -> tuple[int, ...]:
    """fashion_mnist `classes`: a list of distinct labels in 0..9 (at least two), kept in the listed order."""
    if not isinstance(value, list) or len(value) < 2:
        raise ctx.fail("dataset.classes", f"must list at least two labels in [0, {FASHION_CLASSES - 1}]", value)
    labels = tuple(ctx.integer(v, "dataset.classes", 0, FASHION_CLASSES - 1) for v in value)
    if len(set(labels)) != len(labels):
        raise ctx.fail("dataset.classes", "must not repeat a label", value)
    return labels


def _model(ctx: _Ctx, data: Any, experiment_file: Path) -> ModelConfig:
    """`model`: the convnet (default) or a base (a Keras application, or the convnet from a weights file)."""
    if data is None:
        return ModelConfig()
    data = ctx.mapping(data, "model")
    ctx.no_unknown(data, allowed("model"), "model")
    base = ctx.key(data, "model.base")
    weights = data.get("weights", default("model.weights"))
    weights = "none" if weights is None else weights
    if not isinstance(weights, str) or not weights:
        raise ctx.fail("model.weights", "must be imagenet, none or a path to a .weights.h5/.keras file", weights)
    if weights == "imagenet" and base not in APPLICATIONS:
        raise ctx.fail("model.weights", f"imagenet needs a Keras application base (one of {list(APPLICATIONS)}); "
                                        f"base is {base}", weights)
    if weights not in ("imagenet", "none"):
        if not weights.endswith((".weights.h5", ".keras")):
            raise ctx.fail("model.weights", "must be imagenet, none or a path ending in .weights.h5 or .keras",
                           weights)
        weights = str(_resolve_path(weights, experiment_file, "model.weights"))
    uses_base = base != "convnet" or weights != "none"
    trainable = data.get("trainable", not uses_base)
    if not isinstance(trainable, bool):
        trainable = ctx.key(data, "model.trainable", trainable)
    depth = filters = None
    if base == "convnet" and uses_base:
        if "depth" not in data:
            raise ctx.fail("model.depth", "is required for a convnet base loaded from a weights file "
                                          "(its conv blocks)", None)
        depth = ctx.key(data, "model.depth")
        filters = ctx.key(data, "model.filters")
    else:
        for key in ("depth", "filters"):
            if key in data:
                raise ctx.fail(f"model.{key}", "is only used with base: convnet and a weights file "
                                               "(the search space holds the plain convnet's)", data[key])
    return ModelConfig(base, weights, trainable, depth, default("model.filters") if filters is None else filters)


def _train(ctx: _Ctx, data: Any) -> TrainConfig:
    data = ctx.mapping(data, "train")
    ctx.no_unknown(data, allowed("train"), "train")
    converged = _convergence(ctx, data)
    jit, reuse = ctx.key(data, "train.jit_compile"), ctx.key(data, "train.reuse_compiled")
    return TrainConfig(
        epochs=converged.max_epochs if converged else ctx.key(data, "train.epochs"),
        batch_size=ctx.key(data, "train.batch_size"),
        learning_rate=ctx.key(data, "train.learning_rate"),
        adam_epsilon=ctx.key(data, "train.adam_epsilon"),
        mixed_precision=ctx.key(data, "train.mixed_precision"),
        jit_compile=jit,
        early_stopping=ctx.key(data, "train.early_stopping"),
        reuse_compiled=reuse,
        deterministic=ctx.key(data, "train.deterministic"),
        until_converged=converged,
    )


def _convergence(ctx: _Ctx, data: Mapping) -> Convergence | None:
    """`train.until_converged`: patience below max_epochs, and neither `epochs` nor `early_stopping` beside it."""
    if data.get("until_converged") is None:
        return None
    u = ctx.mapping(data["until_converged"], "train.until_converged")
    ctx.no_unknown(u, allowed("train.until_converged"), "train.until_converged")
    for key in ("patience", "max_epochs"):
        if key not in u:
            raise ctx.fail(f"train.until_converged.{key}", "is required (epochs without improvement; the "
                                                            "epoch cap)", None)
    converged = Convergence(ctx.key(u, "train.until_converged.patience"),
                            ctx.key(u, "train.until_converged.max_epochs"))
    if converged.patience >= converged.max_epochs:
        raise ctx.fail("train.until_converged.patience", f"must be below max_epochs ({converged.max_epochs})",
                       converged.patience)
    for key in ("epochs", "early_stopping"):
        if key in data:
            raise ctx.fail(f"train.{key}", "cannot be combined with train.until_converged (its max_epochs is "
                                           "the cap, its patience the early stopping)", data[key])
    return converged


def _base(ctx: _Ctx, data: Any, deepest: int, fixed_depth: bool = False) -> BaseConfig | None:
    """`ablation.base`: `best` (the sweep's best finished trial) or one fixed configuration."""
    if data is None or data == "best":
        return None
    if isinstance(data, str):
        raise ctx.fail("ablation.base", "must be `best` or a mapping with depth and augmentations", data)
    data = ctx.mapping(data, "ablation.base")
    ctx.no_unknown(data, allowed("search_space"), "ablation.base")  # a point of the search space
    if fixed_depth:
        if "depth" in data:
            raise ctx.fail("ablation.base.depth", "is not used with a pretrained base (model.base)", data["depth"])
        depth = 0
    elif "depth" not in data:
        raise ctx.fail("ablation.base.depth", "is required", None)
    else:
        depth = ctx.integer(data["depth"], "ablation.base.depth", 1, deepest)
    filters, dense = (ctx.integer(data[k], f"ablation.base.{k}", *_bounds(f"search_space.{k}")) if k in data else None
                      for k in ("filters", "dense_units"))
    lr = (ctx.number(data["learning_rate"], "ablation.base.learning_rate", *_bounds("search_space.learning_rate"),
                     low_open=True) if "learning_rate" in data else None)

    def param(spec: ParamSpec, value: Any, key: str):
        if value is _MISSING:
            return _default_param(spec).midpoint()
        if isinstance(value, list):
            raise ctx.fail(key, "must be a single value (an ablation trains fixed configurations)", value)
        return _aug_param(ctx, spec, value, key).values[0]

    augs = _augmentations(ctx, data.get("augmentations"), "ablation.base.", param)
    return BaseConfig(depth, filters, dense, lr, augs)


def _ablation(ctx: _Ctx, data: Any, deepest: int, fixed_depth: bool = False) -> AblationConfig:
    data = ctx.mapping(data, "ablation")
    ctx.no_unknown(data, allowed("ablation"), "ablation")
    return AblationConfig(
        repeats=ctx.key(data, "ablation.repeats"),
        base=_base(ctx, data.get("base"), deepest, fixed_depth),
        baselines=ctx.key(data, "ablation.baselines"),
    )


# The name becomes the study, the MLflow experiment and the report's folder (reports/<name>/).
NAME_RULE = ("must be 1-200 letters, digits, '-', '_' or '.', not starting with '.' "
             "(it names the study and the folder reports/<name>/)")
_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,199}")


def is_safe_name(name: str) -> bool:
    """A study/experiment name that is also a safe folder name: no path separators, no leading dot."""
    return bool(_NAME.fullmatch(name))


MAX_YAML_BYTES = 1 << 20  # an experiment or search-space file is a page of settings, not data
MAX_YAML_DEPTH = 32  # nesting levels (the schema needs 4); PyYAML's composer recurses once per level
MAX_YAML_NODES = 100_000  # values once every alias is expanded (a 1 KB file of nested aliases holds billions)


def _yaml_shape(text: str) -> tuple[int, int]:
    """(deepest nesting, values with every alias expanded) of the YAML text, read from the parser's events
    before anything is constructed (iterative: no recursion; stops counting past either bound)."""
    depth = deepest = nodes = 0
    opened: list[tuple[int, str | None]] = []  # (nodes when a collection opened, its anchor)
    sizes: dict[str, int] = {}  # anchor -> values it stands for, expanded
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            deepest = max(deepest, depth)
            opened.append((nodes, event.anchor))
            nodes += 1
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
            start, anchor = opened.pop()
            if anchor is not None:
                sizes[anchor] = nodes - start
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            nodes += sizes.get(event.anchor, 1)
        if deepest > MAX_YAML_DEPTH or nodes > MAX_YAML_NODES:
            break
    return deepest, nodes


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping (YAML says keys are unique; PyYAML
    silently keeps the last, so a setting written twice would change without a word)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line)
            except TypeError:  # an unhashable key: construct_mapping reports it
                continue
            if first != key_node.start_mark.line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {shown(key)} appears twice (lines {first + 1} and "
                                f"{key_node.start_mark.line + 1}); keep one", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, what: str, shown: str) -> Any:
    if not path.exists():
        raise ConfigError(f"{what} file not found. Received: path={str(path)!r} ({shown})")
    if not path.is_file():
        raise ConfigError(f"{what} path is not a file. Received: path={str(path)!r} ({shown})")
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise ConfigError(f"{what} file is too large to be settings (at most {MAX_YAML_BYTES} bytes). "
                          f"Received: {size} bytes ({path})")
    try:
        text = path.read_bytes().decode("utf-8")
        deepest, nodes = _yaml_shape(text)
        if deepest > MAX_YAML_DEPTH:
            raise ConfigError(f"{what} nests more than {MAX_YAML_DEPTH} levels deep ({path})")
        if nodes > MAX_YAML_NODES:
            raise ConfigError(f"{what} holds more than {MAX_YAML_NODES} values once its aliases (*name) are "
                              f"expanded: settings, not data; write the values out ({path})")
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader: plain YAML types only
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{what} is not valid YAML{where}: {one_line(problem, 200)} ({path})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} is not UTF-8 text ({path})") from None
    except RecursionError:
        raise ConfigError(f"{what} nests too deeply ({path})") from None
    if data is None:  # nothing but blank lines or comments
        raise ConfigError(f"{what}: the file is empty (no YAML content). Received: path={str(path)!r} ({shown})")
    if not isinstance(data, dict):  # never echo the content: the path may name any file (/etc/hostname)
        raise ConfigError(f"{what} file must be a YAML mapping (key: value lines). Received: "
                          f"{type(data).__name__} ({path})")
    return data


def add_augmentation() -> str:
    """What to do about a search space without augmentations."""
    return ("Add at least one under search_space.augmentations, e.g. `flip: {mode: [horizontal]}` or "
            "`contrast: {factor: [0.1, 0.5]}`; known: " + ", ".join(sorted(REGISTRY)) + ".")


def _candidates(value: str, experiment_file: Path) -> list[Path]:
    """Where a relative path is looked for (`_resolve_path`): the current directory, then beside the file."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return [p]
    found = [p.resolve(), (experiment_file.parent / p).resolve()]
    return sorted(set(found), key=found.index)


def _space_hint(value: str) -> str:
    """What to do about a missing search-space file: the files that do exist beside where it was looked for."""
    folder = Path(value).expanduser().parent
    near = sorted(str(f) for f in folder.glob("*.yaml")) if folder.is_dir() else []
    return ("Fix the path or write the search space inline (search_space: {depth: …, augmentations: …})"
            + (f"; files there: {', '.join(near[:8])}" if near else "") + ".")


def check_before_training(exp: Experiment, sweep: bool = True) -> None:
    """Checks a run needs that cost milliseconds, made before TensorFlow is imported (seconds): a folder
    dataset's path exists, and a sweep has augmentations to switch on and off."""
    d = exp.dataset
    if d.source in ("folder", "fashion_mnist") and d.path and not Path(d.path).is_dir():
        what = "is not a folder" if Path(d.path).exists() else "does not exist"
        layout = ("train/<class>/* images (and valid/<class>/*, or dataset.validation_split)"
                  if d.source == "folder" else "Fashion-MNIST's IDX files (make data fetches them)")
        raise ConfigError(f"dataset.path {what}. Received: path={d.path!r} (looked at "
                          f"{' and '.join(map(str, _candidates(d.path, Path(exp.path))))}; {exp.path}). "
                          f"Point dataset.path at a folder of {layout}.")
    if d.cache:  # tf.data writes its cache files there while the first epoch runs: refuse now, not mid-trial
        folder = Path(d.cache).resolve().parent
        system = any(folder == root or root in folder.parents for root in (Path("/proc"), Path("/sys")))
        if system or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"dataset.cache must be a file in a folder that exists and can be written. Received: "
                              f"cache={shown(d.cache)} ({exp.path})")
    if sweep and not exp.search_space.augmentation_names:
        where = exp.search_space_path or exp.path
        raise ConfigError(f"search_space has no augmentations: a sweep has nothing to switch on and off, so the "
                          f"report could estimate no effect. Received: augmentations={{}} ({where}). "
                          f"{add_augmentation()}")


def _check_design(space: SearchSpace, trials: int, sequential: bool, file: str) -> None:
    """`sampler: factorial`: one block of the design (resolution IV at least) must fit in `trials`."""
    from .design import DesignError, depth_levels, min_trials, plan_for

    if not space.augmentation_names:
        raise ConfigError(f"sampler: factorial needs augmentations to switch on and off. Received: none ({file}). "
                          f"{add_augmentation()}")
    try:
        plan_for(space, trials, sequential)
    except DesignError:
        block = min_trials(space)
        depths = len(depth_levels(space))
        at = f" at {depths} depths" if depths > 1 else ""
        raise ConfigError(
            f"sampler: factorial cannot fit in trials={trials}: the smallest design of {len(space.augmentation_names)} "
            f"augmentation(s){at} (resolution IV or more) takes {block} runs"
            + (", and stop: decided needs two blocks of it" if sequential else "")
            + f" ({file}). Raise trials to at least {min_trials(space, sequential)}, or search fewer augmentations."
        ) from None


def _shown(p) -> str:
    """A path as an error line shows it: as is, or quoted with escapes when it holds a line break or another
    unprintable character (the error must stay one line)."""
    text = str(p)
    return text if text.isprintable() else repr(text)


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file (and the search-space file it names)."""
    path = Path(path)
    file = str(path)
    data = _read_yaml(path, "experiment", file)
    ctx = _Ctx(file)
    if not isinstance(data, Mapping):
        raise ConfigError(f"experiment file must be a YAML mapping. Received: {type(data).__name__} ({file})")
    ctx.no_unknown(data, allowed(""), "")
    for key in ("name", "dataset", "search_space"):
        if key not in data:
            raise ctx.fail(key, "is required", None)
    name = data["name"]
    if not isinstance(name, str) or not is_safe_name(name):
        raise ctx.fail("name", NAME_RULE, name)
    dataset = _dataset(ctx, data["dataset"], path)
    model = _model(ctx, data.get("model"), path)
    base = model.base if model.uses_base else None
    if model.base in APPLICATIONS and min(dataset.image_size) < 32:
        raise ctx.fail("dataset.image_size", f"must be at least [32, 32] for model.base: {model.base} "
                                             f"(Keras applications' smallest input)", list(dataset.image_size))

    space_raw = data["search_space"]
    space_path = None
    if isinstance(space_raw, str):
        space_file = _resolve_path(space_raw, path, "search_space")
        space_path = str(space_file)
        if not space_file.exists():
            raise ConfigError(
                f"search_space file not found. Received: search_space={shown(space_raw)} (looked at "
                f"{' and '.join(map(_shown, _candidates(space_raw, path)))}; {file}). {_space_hint(space_raw)}"
            )
        space = parse_search_space(_read_yaml(space_file, "search_space", file), str(space_file), base)
    elif isinstance(space_raw, Mapping):
        space = parse_search_space(space_raw, file, base)
    else:
        raise ctx.fail("search_space", "must be a path to a YAML file or a mapping", space_raw)

    deepest = max_depth(dataset.image_size)
    if model.depth is not None and model.depth > deepest:
        raise ctx.fail("model.depth", f"must be in [1, {deepest}] for {dataset.image_size[0]}x"
                                      f"{dataset.image_size[1]} images (each block halves the size)", model.depth)
    top = space.depth.high if isinstance(space.depth, IntRange) else max(space.depth.values)
    if top > deepest:
        key = "depth.high" if isinstance(space.depth, IntRange) else "depth"
        raise ConfigError(
            f"{key} must be in [1, {deepest}] for {dataset.image_size[0]}x{dataset.image_size[1]} images "
            f"(each block halves the size). Received: {key.split('.')[-1]}={top} ({space_path or file})"
        )
    train = _train(ctx, {} if data.get("train") is None else data["train"])  # `train: 0` is no mapping
    sampler = ctx.key(data, "sampler")
    # A design point pruned is a hole in its block and a survivor-only fit, so factorial never prunes.
    pruner = data.get("pruner", "none" if sampler == "factorial" else default("pruner"))
    pruner = ctx.key(data, "pruner", "none" if pruner is None else pruner)
    if sampler == "factorial" and pruner != "none":
        raise ConfigError(f"pruner must be none with sampler: factorial (a pruned design point would leave a hole "
                          f"in its block and the effects would be fitted on survivors). Received: pruner={pruner!r} "
                          f"({file})")
    stop = ctx.key(data, "stop")
    if stop == "decided" and sampler != "factorial":
        raise ConfigError(f"stop: decided needs sampler: factorial (a design run in replicated blocks, refitted "
                          f"after each). Received: sampler={sampler!r} ({file})")
    margin = ctx.key(data, "equivalence_margin")
    trials = ctx.key(data, "trials")
    if sampler == "factorial":
        _check_design(space, trials, stop == "decided", file)
    return Experiment(
        name=name,
        dataset=dataset,
        search_space=space,
        train=train,
        trials=trials,
        repeats=ctx.key(data, "repeats"),
        sampler=sampler,
        pruner=pruner,
        seed=ctx.key(data, "seed"),
        max_consecutive_failures=ctx.key(data, "max_consecutive_failures"),
        stop=stop,
        equivalence_margin=float(margin),
        assume_no_higher_interactions=bool(ctx.key(data, "assume_no_higher_interactions")),
        ablation=_ablation(ctx, {} if data.get("ablation") is None else data["ablation"], deepest, model.uses_base),
        model=model,
        path=file,
        search_space_path=space_path,
    )
