"""One repeat of one configuration, as both the sweep's objective and the ablation train it.

Trains with the caller's listeners (tracking, pruning) plus the non-finite check, puts the history
in the column order every artifact uses, summarises it, and writes the per-run artifacts
(`history.csv`, `learning_curves.png`, `augmentation_preview.png`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from .. import augment, plots
from ..experiment.schema import ModelConfig, TrainConfig
from ..experiment.seeding import RepeatSeeds
from ..experiment.space import TrialConfig
from ..training import train
from ..training.checks import NonFiniteLoss, first_non_finite_epoch, stop_on_non_finite, summarize_repeat
from ..training.data import Dataset
from ..training.model import accuracy_name


@dataclass
class RepeatOutcome:
    """A trained repeat: its history (`repeat`, `epoch`, Keras's columns), the model and how it ran."""

    seeds: RepeatSeeds
    history: pd.DataFrame
    model: object
    placement: str
    jit_compile: str
    accuracy: str

    def check(self) -> dict:
        """The repeat's summary numbers; raises `NonFiniteLoss` if training diverged."""
        by_epoch = self.history.set_index("epoch")
        bad = first_non_finite_epoch(by_epoch)
        if bad is not None:
            raise NonFiniteLoss(f"non-finite loss at epoch {bad} (repeat {self.seeds.repeat})")
        return summarize_repeat(by_epoch, self.accuracy)


def ordered(history: pd.DataFrame) -> pd.DataFrame:
    """`repeat`, `epoch`, then Keras's columns in the order Keras logged them."""
    cols = ["repeat", "epoch", *[c for c in history.columns if c not in ("repeat", "epoch")]]
    return history[cols]


def train_repeat(config: TrialConfig, dataset: Dataset, settings: TrainConfig, seeds: RepeatSeeds,
                 listeners: Sequence = (), model: ModelConfig = ModelConfig()) -> RepeatOutcome:
    """Train one repeat of the network `model` with the non-finite check and the caller's Keras callbacks."""
    result = train.run(config, dataset, settings, seeds, callbacks=[stop_on_non_finite(), *listeners], model=model)
    history = ordered(result.history.reset_index().assign(repeat=seeds.repeat))
    # What Keras resolved `jit_compile` to (false on CPU for "auto").
    jit = str(bool(result.model.jit_compile)).lower()
    return RepeatOutcome(seeds, history, result.model, result.placement, jit, accuracy_name(dataset.num_classes))


def preview_images(config: TrialConfig, dataset: Dataset, aug_seed: int):
    """16 augmentations of the first training image, or None without augmentation (Keras: call on the
    training thread)."""
    if not config.enabled:
        return None
    return augment.preview(config.enabled, aug_seed, dataset.x_train[0])


def write_artifacts(folder: Path, history: pd.DataFrame | None, title: str, images=None) -> list[Path]:
    """`history.csv` and `learning_curves.png` (when there is a history) and `augmentation_preview.png`."""
    out = []
    if history is not None and len(history):  # already in `ordered` columns (train_repeat made it so)
        history.to_csv(folder / "history.csv", index=False)
        out.append(folder / "history.csv")
        out.append(plots.learning_curves(history, folder / "learning_curves.png", title))
    if images is not None:
        out.append(plots.image_grid(images, folder / "augmentation_preview.png"))
    return out
