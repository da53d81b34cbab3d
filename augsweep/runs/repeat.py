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
from ..training.checks import diverged_summary, first_non_finite_epoch, stop_on_non_finite, summarize_repeat
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
    engine: str = "keras"  # what computed it: "keras" (alone, or a branch: bit for bit alone) | "stacked"

    def check(self, chance: float) -> dict:
        """The repeat's summary numbers. A diverged training (a non-finite loss stopped it) is scored by the
        epochs before it diverged, or at `chance` (the loss of guessing) when none was finite, and carries
        `diverged_epoch`: dropping it would bias its augmentation's effect toward harmless."""
        by_epoch = self.history.set_index("epoch")
        bad = first_non_finite_epoch(by_epoch)
        if bad is None:
            return summarize_repeat(by_epoch, self.accuracy)
        return diverged_summary(by_epoch, bad, self.accuracy, chance)


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


ENGINES = ("branches", "stacked", "auto")


def group_engine(config: TrialConfig, datasets: Sequence[Dataset], settings: TrainConfig,
                 seeds: Sequence[RepeatSeeds], model: ModelConfig = ModelConfig(),
                 engine: str = "branches") -> tuple[str, str]:
    """(the engine a group of repeats trains with, why): `branches` (`training.group`: bit for bit each training
    alone), `stacked` (`training.stacked`: the members fused, within a stated tolerance of training alone and bit for
    bit the same member alone through that engine), or `auto`: stacked where it applies (the plain convnet on
    TensorFlow, every augmentation in the model, float32), branches otherwise."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}. Received: engine={engine!r}")
    if engine == "branches":
        return "branches", "requested"
    from .. import runtime
    from ..training import group, stacked

    members = [group.Member(config, d, s) for d, s in zip(datasets, seeds)]
    why = stacked.stackable(members, settings, model)
    if not why and train.plan_placement(config, settings).in_data:
        why = "augmentations placed in the input pipeline"
    if not why and engine == "auto" and runtime.backend() != "tensorflow":
        why = f"{runtime.backend()}: branches compile into one program and measured faster (bench/group.py)"
    if why and engine == "stacked":
        raise ValueError(f"these trainings cannot run as one stacked program: {why}")
    return ("branches", why) if why else ("stacked", "")


def train_group(config: TrialConfig, datasets: Sequence[Dataset], settings: TrainConfig, seeds: Sequence[RepeatSeeds],
                live: Sequence[Sequence] = (), model: ModelConfig = ModelConfig(),
                engine: str = "branches") -> list[RepeatOutcome]:
    """Train repeats of one configuration as one program, each on its own dataset, with the non-finite check and
    `live[k]` (callbacks that must see member k's epochs as they happen) per member. `engine`: `group_engine`; the
    outcomes carry the one used (`RepeatOutcome.engine`), which `--reproduce` must retrain with."""
    from ..training import group

    live = list(live) or [()] * len(seeds)
    members = [group.Member(config, d, s, [stop_on_non_finite(), *cbs]) for d, s, cbs in zip(datasets, seeds, live)]
    chosen, _ = group_engine(config, datasets, settings, seeds, model, engine)
    return train_members(members, settings, model, chosen)


def train_members(members: Sequence, settings: TrainConfig, model: ModelConfig, engine: str) -> list[RepeatOutcome]:
    """Train prepared members (`training.group.Member`, their callbacks included) as one program through `engine`
    ("branches" or "stacked", as `group_engine` chose), one outcome per member in their order."""
    from ..training import group, stacked

    if engine == stacked.ENGINE:
        histories, networks, program, _ = stacked.run_stacked(members, settings, model)
        jit = str(bool(program.jit_compile)).lower()
        return [RepeatOutcome(m.seeds, ordered(h.reset_index().assign(repeat=m.seeds.repeat)), networks.get(k),
                              "model", jit, accuracy_name(m.dataset.num_classes), stacked.ENGINE)
                for k, (h, m) in enumerate(zip(histories, members))]
    results, program = group.run_group(members, settings, model)
    jit = str(bool(program.jit_compile)).lower()
    return [RepeatOutcome(m.seeds, ordered(r.history.reset_index().assign(repeat=m.seeds.repeat)), r.model,
                          r.placement, jit, accuracy_name(m.dataset.num_classes)) for r, m in zip(results, members)]


def replay(done: RepeatOutcome, listeners: Sequence) -> int | None:
    """Hand a trained repeat's epochs to Keras callbacks that listen as if it were training now (tracking,
    pruning), in order; cut its history where one of them stops it, as it would have stopped live. Returns that
    epoch, or None."""
    from types import SimpleNamespace

    holder = SimpleNamespace(stop_training=False)
    for cb in listeners:
        cb.set_model(holder)
    for cb in listeners:
        cb.on_train_begin(None)
    stopped = None
    columns = [c for c in done.history.columns if c not in ("repeat", "epoch")]
    for row in done.history.to_dict("records"):
        epoch = int(row["epoch"])
        logs = {c: float(row[c]) for c in columns}
        for cb in listeners:
            cb.on_epoch_begin(epoch, None)
        for cb in listeners:
            cb.on_epoch_end(epoch, dict(logs))
        if holder.stop_training:
            stopped = epoch
            break
    for cb in listeners:
        cb.on_train_end(None)
    if stopped is not None:
        done.history = done.history[done.history["epoch"] <= stopped].reset_index(drop=True)
    return stopped


MODEL_ARTIFACT = "model.keras"  # a COMPLETE trial's best repeat, trained network with its augmentations in front


def save_model(done: RepeatOutcome, config: TrialConfig, settings: TrainConfig, path: Path) -> Path:
    """Save a repeat's trained network as a `.keras` file with every augmentation it trained with inside it:
    those that ran in the input pipeline (`placement`) are put back in front, seeded as they trained."""
    import keras

    in_data = train.plan_placement(config, settings).in_data
    model = done.model
    if in_data:
        layers = augment.build_layers({n: config.enabled[n] for n in in_data}, done.seeds.aug)
        model = keras.Sequential([keras.Input(model.input_shape[1:]), *layers, model])
    model.save(path)
    return path


def preview_image_index(x, candidates: int = 256) -> int:
    """A training image that shows what an augmentation does: the clearest (highest contrast) of the
    most asymmetric ones (a mirror or a quarter turn changes it most) among the first `candidates`.
    Deterministic: the same dataset always gives the same image."""
    import numpy as np

    x = np.asarray(x[:candidates], np.float32)
    if x.ndim == 3:
        x = x[..., None]
    mirrored = np.abs(x - x[:, :, ::-1]).mean(axis=(1, 2, 3))
    flipped = np.abs(x - x[:, ::-1]).mean(axis=(1, 2, 3))
    turned = np.abs(x - np.rot90(x, 2, axes=(1, 2))).mean(axis=(1, 2, 3))
    contrast = x.std(axis=(1, 2, 3))
    return int(np.argmax(np.minimum(np.minimum(mirrored, flipped), turned) * contrast))


def preview_images(config: TrialConfig, dataset: Dataset, aug_seed: int, cols: int = 4):
    """Rows of (caption, images) for `augmentation_preview.png`: the original image first, then all of the
    trial's augmentations together, then each one alone when there are several; or None without
    augmentation (Keras: call on the training thread)."""
    if not config.enabled:
        return None
    image = dataset.x_train[preview_image_index(dataset.x_train)]
    together = augment.preview(config.enabled, aug_seed, image, n=cols * 2 - 1)
    rows = [(f"original, then {config.parameters()}", [image, *together[:cols - 1]]),
            ("", list(together[cols - 1:]))]
    if len(config.enabled) > 1:
        for name, params in config.augmentations:
            alone = TrialConfig(config.depth, augmentations=((name, params),))
            rows.append((alone.parameters() + " alone", list(augment.preview(alone.enabled, aug_seed, image, n=cols))))
    return rows


def write_artifacts(folder: Path, history: pd.DataFrame | None, title: str, images=None) -> list[Path]:
    """`history.csv` and `learning_curves.png` (when there is a history) and `augmentation_preview.png`
    (`images`: the captioned rows of `preview_images`)."""
    out = []
    if history is not None and len(history):  # already in `ordered` columns (train_repeat made it so)
        history.to_csv(folder / "history.csv", index=False)
        out.append(folder / "history.csv")
        out.append(plots.save(plots.learning_curves(history, title), folder / "learning_curves.png"))
    if images is not None:
        out.append(plots.image_grid(images, folder / "augmentation_preview.png"))
    return out
