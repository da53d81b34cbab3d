"""The decided augmentation block: which configuration to recommend (pure pandas), and that configuration's
layers written next to the report as `augmentation.py` (readable code) and `augmentation.keras` (the Keras
object). Both build their layers with the registry's own builders (`augsweep.augment.build_layers`), seeded as
the recommended model trained, so the block is the one the sweep trained with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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


def block_layers(augmentations: dict, aug_seed: int) -> list:
    """The recommended layers, built by the registry's builders exactly as the sweep built them."""
    from ..augment import build_layers

    return build_layers(augmentations, aug_seed)


def build_block(augmentations: dict, aug_seed: int, input_shape) -> object:
    """The block as a `keras.Sequential` on images of `input_shape` (height, width, channels)."""
    import keras

    layers = block_layers(augmentations, aug_seed) or [keras.layers.Identity(name="no_augmentation")]
    return keras.Sequential([keras.Input(tuple(input_shape)), *layers], name=BLOCK_NAME)


def _layer_line(layer) -> str:
    """A comment line naming a built layer and its magnitudes as Keras reports them."""
    cfg = layer.get_config()
    keep = {k: v for k, v in cfg.items() if k not in ("name", "trainable", "dtype", "data_format", "seed")}
    args = ", ".join(f"{k}={v!r}" for k, v in keep.items())
    return f"    {type(layer).__name__}({args})"


def block_source(rec: Recommendation, aug_seed: int, input_shape, study: str) -> str:
    """The text of `augmentation.py`."""
    augs = rec.config.enabled
    lines = [_layer_line(layer) for layer in block_layers(augs, aug_seed)] or ["    none: no augmentation (the block passes images through)"]
    shape = tuple(int(s) for s in input_shape)
    return f'''"""The augmentation block augsweep recommends for study {study!r}.

Which: {rec.why}.
Its mean best validation loss is {rec.mean_best_val_loss:.4f}; the magnitudes below are those of its best seed
(trial {rec.trial}, repeat {rec.repeat}, best val_loss {rec.best_val_loss:.4f}), and the seed is the one that
trained, so `augmentation_block()` gives the very layers the sweep trained with.

Imports: keras, and augsweep's registry (`augsweep.augment.build_layers`), which builds each augmentation's
seeded Keras preprocessing layer (and augsweep's own `RandomCropResize` for `crop`). The layers are active only
in training (`training=True`); at inference they pass images through. Images are float32 in [0, 1].

Put it in front of your own model:

    from augmentation import augmentation_block
    model = keras.Sequential([augmentation_block(), *your_layers])

The layers it builds:
{chr(10).join(lines)}
"""

import keras

from augsweep.augment import build_layers

AUGMENTATIONS = {json.dumps(augs, sort_keys=True)}
SEED = {int(aug_seed)}  # the trained seed; another seed gives other random draws of the same magnitudes
INPUT_SHAPE = {shape}  # height, width, channels


def augmentation_block(input_shape=INPUT_SHAPE, seed=SEED):
    """The recommended augmentations as a `keras.Sequential` (identity at inference)."""
    layers = build_layers(AUGMENTATIONS, seed) or [keras.layers.Identity(name="no_augmentation")]
    return keras.Sequential([keras.Input(tuple(input_shape)), *layers], name="augmentation")
'''


def write_block(rec: Recommendation, aug_seed: int, input_shape, study: str, out_dir: Path) -> list[Path]:
    """Write `augmentation.py` and `augmentation.keras` into `out_dir`; returns their paths."""
    py = out_dir / "augmentation.py"
    py.write_text(block_source(rec, aug_seed, input_shape, study))
    keras_file = out_dir / "augmentation.keras"
    build_block(rec.config.enabled, aug_seed, input_shape).save(keras_file)
    return [py, keras_file]
