"""The decided augmentation block: which configuration to recommend (pure pandas), and that configuration's
layers written next to the report as `augmentation.py` (readable code, Keras alone) and `augmentation.keras`
(the block that file builds, saved by Keras). The code is derived from the layers the registry's builders
(`augsweep.augment.build_layers`) return with the recommended model's seed: each layer's class and
configuration, checked to rebuild the same configuration, so the file cannot drift from the registry. Also
here: what the registered model takes (`model_input_text`) and the lines that load it (`load_model_lines`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

from ..experiment.space import TrialConfig, aug_key, parse_aug_key
from .configurations import label

BLOCK_FILES = ("augmentation.py", "augmentation.keras")
BLOCK_NAME = "augmentation"


@dataclass(frozen=True)
class Recommendation:
    """The recommended configuration with the magnitudes of its best seed, and where its model is."""

    config: TrialConfig  # depth, learning rate and the augmentations on, with the best seed's trial's magnitudes
    label: str  # its name in configurations.csv
    which: str  # "best" (the best configuration by its mean) | "best without hurts" (restricted)
    why: str  # one sentence naming which, for the report, the block's docstring and MLflow
    mean_best_val_loss: float  # the configuration's mean over every seed
    trial: int  # the trial holding its best seed
    repeat: int  # the best seed's position in that trial (`seeds_r<repeat>`)
    best_val_loss: float  # the best seed's best validation loss
    run_id: str  # the trial's MLflow run (its `model.keras` is that trial's best repeat)


def answer_hurts(effects: pd.DataFrame) -> set[str]:
    """Augmentations whose verdict is `hurts` in the rows the answer quotes (the ablation's where there is one)."""
    if effects is None or not len(effects):
        return set()
    rows = effects[effects["source"] == "ablation"] if (effects["source"] == "ablation").any() else effects
    return set(rows.loc[rows["verdict"] == "hurts", "augmentation"].astype(str))


def recommend(configs: pd.DataFrame, effects: pd.DataFrame, table: pd.DataFrame, trials: pd.DataFrame,
              augmentations: list[str]) -> Recommendation | None:
    """The best configuration by its mean among those with no augmentation whose verdict is `hurts` (named
    "best without hurts" when that is not the best configuration as is); its best seed is the (trial, repeat)
    with the lowest best validation loss. None when nothing finished."""
    if configs is None or not len(configs) or table is None or not len(table):
        return None
    hurts = answer_hurts(effects)
    table = table[np.isfinite(table["best_val_loss"].astype(float))].copy()
    on = table[[aug_key(a) for a in augmentations]].astype(bool).to_numpy()
    table["configuration"] = [label(d, [a for a, o in zip(augmentations, row) if o])
                              for d, row in zip(table["depth"], on)]
    table["_augs"] = [frozenset(a for a, o in zip(augmentations, row) if o) for row in on]
    augs_of = table.groupby("configuration")["_augs"].first()
    ranked = [c for c in configs["configuration"] if c in augs_of.index]
    if not ranked:
        return None
    allowed = [c for c in ranked if not augs_of[c] & hurts]
    chosen = allowed[0] if allowed else ranked[0]
    first = ranked[0]
    if chosen == first:
        which = "best"
        why = f"the best configuration by its mean ({first})"
        if augs_of[first] & hurts:
            why += f"; every configuration includes an augmentation that hurts ({', '.join(sorted(hurts))})"
    else:
        which = "best without hurts"
        why = (f"the best configuration by its mean among those without an augmentation that hurts ({chosen}); "
               f"the best as is, {first}, includes {', '.join(sorted(augs_of[first] & hurts))}")
    rows = table[table["configuration"] == chosen].sort_values(["best_val_loss", "trial", "repeat"])
    top = rows.iloc[0]
    trial = trials[trials["trial"] == int(top["trial"])].iloc[0]
    flat = {k: v for k, v in trial.items() if k == "depth" or k in ("filters", "dense_units", "learning_rate")
            or parse_aug_key(str(k)) is not None}
    flat = {k: (v.item() if hasattr(v, "item") else v) for k, v in flat.items()
            if not (isinstance(v, float) and np.isnan(v))}
    mean = float(configs.loc[configs["configuration"] == chosen, "mean_best_val_loss"].iloc[0])
    return Recommendation(TrialConfig.from_flat(flat), chosen, which, why, mean, int(top["trial"]),
                          int(top["repeat"]), float(top["best_val_loss"]), str(trial["mlflow_run_id"]))


# A layer's configuration keys that are not written as its arguments in `augmentation.py`: the name and seed
# are written apart (the seed derived from the block's seed), the dtype follows Keras's global policy.
_NOT_ARGUMENTS = ("name", "trainable", "dtype", "seed")
# augsweep's own layers, written into `augmentation.py` as their Keras-only twins in `augment.standalone`; a Keras
# layer whose saved configuration does not load back is written as its twin there too (RandomShear).
OWN_LAYERS = ("RandomCropResize", "RandomMirror", "TrivialAugment")


def block_layers(augmentations: dict, aug_seed: int) -> list[tuple[str, object]]:
    """(augmentation, layer) pairs built by the registry's builders exactly as the sweep built them."""
    from ..augment import build_layers, build_order

    return list(zip(build_order(augmentations), build_layers(augmentations, aug_seed)))


def _plain(value):
    """`value` with NumPy scalars turned into Python ones, so its repr is plain Python."""
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value.item() if hasattr(value, "item") and not isinstance(value, str) else value


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("name", "trainable", "dtype")}


def _symmetric(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
            and value[1] > 0 and value[0] == -value[1])


def layer_arguments(layer, cls=None) -> tuple[dict, bool]:
    """(the arguments, name, dtype, trainable and seed aside, that rebuild `layer` as class `cls` (default: its
    own) with the same configuration; whether its configuration rebuilds it as is, as loading a saved one
    does). A range (-f, f) that a class refuses back from its own configuration (Keras's RandomShear) is given
    as f, which it reads as that range."""
    cls = cls or type(layer)
    config = _plain(layer.get_config())
    args = {k: v for k, v in config.items() if k not in _NOT_ARGUMENTS}
    seed = {"seed": config["seed"]} if "seed" in config else {}
    for as_is, candidate in ((True, args), (False, {k: v[1] if _symmetric(v) else v for k, v in args.items()})):
        try:
            if _comparable(_plain(cls(**candidate, **seed).get_config())) == _comparable(config):
                return candidate, as_is
        except (TypeError, ValueError):
            continue
    raise ValueError(f"{type(layer).__name__} cannot be rebuilt from its configuration. Received: {config}")


def _call(cls_name: str, args: dict, seed: str | None, name: str | None, module: str = "keras.layers.") -> str:
    parts = [f"{k}={v!r}" for k, v in args.items()] + ([f"seed={seed}"] if seed else []) + \
        ([f"name={name!r}"] if name else [])
    return f"{module}{cls_name}({', '.join(parts)})"


def _is_keras_layer(layer) -> bool:
    import keras

    cls = type(layer)
    return cls.__module__.startswith("keras.") and getattr(keras.layers, cls.__name__, None) is cls


def _seed_code(layer, seed: int, code: str, what: str) -> str | None:
    """`code` (the expression of the layer's seed in `augmentation.py`) when the layer's seed is `seed`; None
    for a layer without one."""
    config = layer.get_config()
    if "seed" not in config:
        return None
    if config["seed"] != seed:
        raise ValueError(f"{what}: its layer's seed is not layer_seed(), so augmentation.py cannot derive it. "
                         f"Received: seed={config['seed']}, expected {seed}")
    return code


@dataclass(frozen=True)
class BlockCode:
    """`augmentation.py`'s pieces for one block: one expression per layer, and what they need defined."""

    layers: tuple[str, ...]  # Python expressions building each layer from `seed`
    summary: tuple[str, ...]  # one readable line per layer for the docstring
    own: tuple[str, ...] = ()  # augsweep's own classes used (defined in the file)
    constants: tuple[str, ...] = ()  # module-level assignments the expressions use


def block_code(augmentations: dict, aug_seed: int) -> BlockCode:
    """The layers of the block as Keras-only Python: for each layer the registry builds, its class (a built-in
    Keras layer, or the Keras-only twin of augsweep's own) with the arguments of its configuration and the
    seed `layer_seed(seed, name)`; checked to rebuild the very configuration. Raises ValueError for a layer
    that is neither."""
    from ..augment import layer_seed
    from ..augment import standalone as standalone_layers

    layers, summary, own, constants = [], [], [], []
    for aug, layer in block_layers(augmentations, aug_seed):
        cls_name, name = type(layer).__name__, layer.get_config().get("name")
        seed = _seed_code(layer, layer_seed(aug_seed, aug), f"layer_seed(seed, {aug!r})", f"augmentation {aug!r}")
        if _is_keras_layer(layer):
            args, loads = layer_arguments(layer)
            if loads or not hasattr(standalone_layers, cls_name):
                layers.append(_call(cls_name, args, seed, name))
            else:
                layers.append(_call(cls_name, args, seed, name, module=""))
                own.append(cls_name)
        elif cls_name == "TrivialAugment" and type(layer).__module__.startswith("augsweep."):
            operations = []
            for op, op_layer in zip([n for n in layer.op_names if n != "identity"], layer.op_layers):
                if not _is_keras_layer(op_layer):
                    raise ValueError(f"TrivialAugment's operation {op!r} is not a Keras layer. "
                                     f"Received: {type(op_layer).__name__}")
                if _seed_code(op_layer, layer_seed(int(layer.seed), op), "", op) is None:
                    raise ValueError(f"TrivialAugment's operation {op!r} has no seed")
                operations.append([op, type(op_layer).__name__, layer_arguments(op_layer)[0]])
            constants.append("TRIVIAL_OPERATIONS = [  # name, Keras layer, its arguments (seed: layer_seed)\n"
                             + "".join(f"    {o!r},\n" for o in operations) + "]")
            layers.append(f"TrivialAugment(TRIVIAL_OPERATIONS, seed={seed}, name={name!r})")
            summary.append(f"{aug}: TrivialAugment (one of {', '.join(o[0] for o in operations)} or none per image)")
            own.append(cls_name)
            continue
        elif cls_name in OWN_LAYERS and type(layer).__module__.startswith("augsweep."):
            args = layer_arguments(layer, getattr(standalone_layers, cls_name))[0]
            layers.append(_call(cls_name, args, seed, name, module=""))
            own.append(cls_name)
        else:
            raise ValueError(f"augmentation {aug!r}: its layer {type(layer).__module__}.{cls_name} is neither a "
                             f"Keras layer nor one of augsweep's that augmentation.py defines "
                             f"({', '.join(OWN_LAYERS)})")
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items() if k != "data_format")
        summary.append(f"{aug}: {cls_name}({shown})")
    return BlockCode(tuple(layers), tuple(summary), tuple(dict.fromkeys(own)), tuple(constants))


def model_input_text(dataset) -> str:
    """What the study's model takes and returns, for its experiment's `dataset` (a `DatasetConfig`): how the
    images were prepared before the model (its augmentations and a pretrained base's preprocessing are inside
    it)."""
    h, w = (int(s) for s in dataset.image_size)
    prepared = {
        "digits": f"scikit-learn's 8x8 digits: pixel values / 16, resized to {h}x{w} (bilinear, PIL mode F), "
                  f"clipped to [0, 1], 1 channel",
        "synthetic": f"augsweep's generated vehicle silhouettes, RGB in [0, 1] at {h}x{w}",
        "folder": f"each image file decoded (PIL; transparency over white), converted to RGB, resized to {h}x{w} "
                  f"(bilinear), / 255",
        "fashion_mnist": f"Fashion-MNIST's 28x28 uint8 pixels / 255, resized to {h}x{w} (bilinear, PIL mode F) "
                         f"when not 28x28, clipped to [0, 1], 1 channel",
    }.get(dataset.source, f"dataset.source {dataset.source!r}: float32 in [0, 1] at {h}x{w}")
    classes = {"digits": "0-9", "synthetic": "car, truck" if dataset.classes == 2 else "car, truck, bus",
               "folder": "the class folders' names, sorted",
               "fashion_mnist": "dataset.classes in the order listed"}.get(dataset.source, "in label order")
    return (f"Input: float32 images (N, {h}, {w}, channels), values in [0, 1], channels last: {prepared}. "
            f"Output: with two classes one sigmoid unit, the probability of the second; otherwise a softmax over "
            f"the classes ({classes}).")


def block_source(choice: Recommendation, aug_seed: int, input_shape, study: str, model_input: str = "") -> str:
    """The text of `augmentation.py`: Keras alone (see `block_code`)."""
    import inspect
    import textwrap

    from ..augment import layer_seed
    from ..augment import standalone as standalone_layers

    code = block_code(choice.config.enabled, aug_seed)
    shape = "x".join(str(int(s)) for s in input_shape)
    saved = (f"after `import augmentation` (this file defines and registers {', '.join(code.own)}, which the saved "
             f"block holds)" if code.own else "with Keras alone")
    summary = "\n".join(f"    {line}" for line in code.summary) or "    none (the block passes images through)"
    parts = [
        f"Which: {choice.why}. Its mean best validation loss is {choice.mean_best_val_loss:.4f}; the magnitudes "
        f"below are those of its best seed (trial {choice.trial}, repeat {choice.repeat}, best val_loss "
        f"{choice.best_val_loss:.4f}), "
        f"and SEED is the seed that trained, so `augmentation_block()` builds the very layers the sweep trained "
        f"with: the same classes, arguments and seeds as augsweep's registry.",
        f"The layers act only in training (`training=True`); at inference they pass images through. Images are "
        f"float32 in [0, 1], channels last, of any height, width and channels (the study's were {shape}). Put the "
        f"block in front of your own model:",
        "    import keras\n    from augmentation import augmentation_block\n"
        "    model = keras.Sequential([keras.Input((32, 32, 3)), augmentation_block(), *your_layers])",
        f"or load the same block saved by Keras, `keras.saving.load_model(\"augmentation.keras\")`, {saved}.",
        f"The layers:\n{summary}",
    ]
    if model_input:
        parts.append(f"The study's model, registered in MLflow as `{study}-best`, has these augmentations inside "
                     f"it. {model_input}")
    docstring = "\n\n".join(
        [f"The augmentation block augsweep recommends for study {study!r}; it needs only Keras.",
         *(p if p.startswith(" ") or "\n" in p else textwrap.fill(p, 110) for p in parts)])
    definitions = [inspect.getsource(layer_seed).rstrip()]
    definitions += [inspect.getsource(getattr(standalone_layers, c)).rstrip() for c in code.own]
    definitions = "\n\n\n".join([*definitions, *code.constants])
    layers = "".join(f"        {line},\n" for line in code.layers) or \
        '        keras.layers.Identity(name="no_augmentation"),\n'
    return f'''"""{docstring}
"""

import zlib

import keras

SEED = {int(aug_seed)}  # the trained seed; another seed gives other random draws of the same magnitudes
STUDY_INPUT_SHAPE = {tuple(int(s) for s in input_shape)}  # height, width, channels of the study's images


{definitions}


def augmentation_block(input_shape=None, seed=SEED):
    """The recommended augmentations as a `keras.Sequential`, the identity at inference.

    `input_shape`: (height, width, channels) of the images; None leaves the block unbuilt, so it takes images
    of any height, width and channels, as the first layer of a model with or without a `keras.Input`."""
    layers = [
{layers}    ]
    inputs = [] if input_shape is None else [keras.Input(tuple(input_shape))]
    return keras.Sequential([*inputs, *layers], name="augmentation")
'''


def block_from_source(source: str, input_shape=None):
    """The block that `augmentation.py`'s text builds (run as a module named `augmentation`)."""
    namespace = {"__name__": "augmentation"}
    exec(compile(source, "augmentation.py", "exec"), namespace)  # noqa: S102 - our own generated file
    return namespace["augmentation_block"](input_shape)


def write_block(choice: Recommendation, aug_seed: int, input_shape, study: str, out_dir: Path,
                model_input: str = "") -> list[Path]:
    """Write `augmentation.py` and `augmentation.keras` (the block that file builds, unbuilt: any input shape) into
    `out_dir`; returns their paths. `model_input`: `model_input_text` of the study's dataset, for the docstring."""
    source = block_source(choice, aug_seed, input_shape, study, model_input)
    py = out_dir / "augmentation.py"
    py.write_text(source)
    keras_file = out_dir / "augmentation.keras"
    with warnings.catch_warnings():  # unbuilt on purpose (any input shape); its layers hold no weights
        warnings.filterwarnings("ignore", message="You are saving a model that has not yet been built")
        block_from_source(source).save(keras_file)
    return [py, keras_file]


def portable_tracking_uri(tracking_uri: str) -> tuple[str, bool]:
    """(the tracking URI as it works from any folder, whether credentials were dropped): a relative SQLite
    path made absolute (MLflow's default, `sqlite:///mlflow.db`, is relative to the current folder); a
    password dropped, and an HTTP server's user too (MLflow reads them from MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD; a database's password comes from PGPASSFILE)."""
    uri = str(tracking_uri)
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if path and not path.startswith("/") and not path.startswith(":memory:"):
            uri = f"sqlite:///{Path(path).resolve()}"
        return uri, False
    parts = urlsplit(uri)
    http = parts.scheme in ("http", "https")
    if parts.password is None and not (http and parts.username):
        return uri, False
    host = parts.netloc.rsplit("@", 1)[1]
    user = "" if http or not parts.username else f"{parts.username}@"
    return urlunsplit(parts._replace(netloc=f"{user}{host}")), http


def load_model_lines(tracking_uri: str, model_name: str, version, augmentations=()) -> list[str]:
    """Python lines that load the registered model `model_name` version `version` from any folder: the tracking
    URI set first (see `portable_tracking_uri`; without it MLflow looks in `./mlflow.db`, finds no registered
    model and leaves an empty database behind). `augmentations`: those inside the model (name -> parameters);
    `crop`, flip `both` and TrivialAugment are augsweep's own layers, registered by a line that needs augsweep."""
    uri, credentials = portable_tracking_uri(tracking_uri)
    lines = ["import mlflow"]
    flip = augmentations.get("flip") if isinstance(augmentations, dict) else None
    if {"crop", "trivialaugment"} & set(augmentations) or (isinstance(flip, dict) and flip.get("mode") == "both"):
        lines += ["from augsweep.augment.layers import layer_classes",
                  "layer_classes()  # registers augsweep's own layers, which the model holds"]
    if credentials:
        lines.append("# the server's user and password: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    return lines + [f"mlflow.set_tracking_uri({uri!r})",
                    f"model = mlflow.keras.load_model({f'models:/{model_name}/{version}'!r})"]
