"""Training returns data: a per-epoch history frame. Tracking and pruning listen via callbacks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from . import augment
from .config import TrainConfig
from .data import Dataset
from .model import build_convnet, compile_model
from .seeding import RepeatSeeds, set_global_seed
from .space import TrialConfig


@dataclass
class RepeatResult:
    """One training run: its history (Keras names, one row per epoch) and the model."""

    history: pd.DataFrame
    model: object

    @property
    def best_val_loss(self) -> float:
        v = self.history["val_loss"].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        return float(v.min()) if len(v) else float("nan")


def history_frame(history: dict[str, list[float]]) -> pd.DataFrame:
    """Keras `History.history` -> DataFrame indexed by epoch (0-based), columns in Keras's names."""
    frame = pd.DataFrame({k: list(map(float, v)) for k, v in history.items()})
    frame.index.name = "epoch"
    return frame


def build(config: TrialConfig, dataset: Dataset, train: TrainConfig, seeds: RepeatSeeds):
    """A fresh compiled model for one repeat of one configuration (clears the Keras session)."""
    import keras

    keras.backend.clear_session()
    set_global_seed(seeds.order)
    layers = augment.build_layers(config.enabled, seeds.aug)
    model = build_convnet(dataset.input_shape, dataset.num_classes, config.depth, config.filters,
                          config.dense_units, layers, seed=seeds.init)
    jit = {"auto": "auto", "true": True, "false": False}[train.jit_compile]
    return compile_model(model, dataset.num_classes, config.learning_rate, train.adam_epsilon, jit)


def fit(model, dataset: Dataset, epochs: int, batch_size: int, callbacks: Sequence = ()) -> pd.DataFrame:
    """Train on the dataset's arrays, validate each epoch, return the history frame."""
    history = model.fit(
        dataset.x_train, dataset.y_train,
        validation_data=(dataset.x_val, dataset.y_val),
        epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
        callbacks=list(callbacks),
    )
    return history_frame(history.history)


def run(config: TrialConfig, dataset: Dataset, train: TrainConfig, seeds: RepeatSeeds,
        callbacks: Sequence = ()) -> RepeatResult:
    """Build and train one repeat; `callbacks` (tracking, pruning) come from the caller."""
    import keras

    model = build(config, dataset, train, seeds)
    extra = [keras.callbacks.EarlyStopping(patience=train.early_stopping)] if train.early_stopping else []
    frame = fit(model, dataset, train.epochs, train.batch_size, [*callbacks, *extra])
    return RepeatResult(frame, model)
