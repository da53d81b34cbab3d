"""What the report reads from the stores, as immutable values: the one load step (`load`) fills them, and
everything after it (analysis, words, figures, rendering) reads them and nothing else of the stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..runtime import FollowUp


@dataclass(frozen=True)
class ParentRun:
    """What the sweep's parent run recorded: its tags, the package versions, its params; `problem` says why they
    could not be read (None when they were, or when the study names no parent run)."""

    tags: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    problem: str | None = None


@dataclass(frozen=True)
class Population:
    """Which data a sweep's verdicts are about, as its parent run recorded it: a split drawn per seed replicate
    (`drawn`, with the training images of each), or the one split every training used (also a run logged before
    splits could be drawn)."""

    drawn: bool = False
    train_images: str | None = None


@dataclass(frozen=True)
class SweepData:
    """Everything the report uses about a sweep, read from the stores once."""

    trials: pd.DataFrame  # one row per trial (`trials_by_number`)
    trainings: pd.DataFrame  # one row per trial x repeat of COMPLETE trials, `value` = its best val_loss
    curves: pd.DataFrame  # one row per epoch of each training's history (complete and pruned trials)
    importance: tuple  # (Optuna's importance frame or None, what computed it or why not)
    design: dict | None  # what a factorial study recorded about its design
    stopped: str | None  # why the sweep stopped, when it did on its own
    parent: ParentRun
    provenance: dict  # what the report's Provenance section states
    chance: float | None  # the loss of guessing, as the parent run recorded it
    num_classes: int | None
    commands: FollowUp  # follow-up commands on these stores
    parent_run_id: str | None = None  # the sweep's MLflow parent run (where the report is logged)
    population: Population = Population()  # which data the verdicts are about


@dataclass(frozen=True)
class AblationData:
    """What the stores hold about the latest ablation of an experiment."""

    parent_run_id: str
    spec: dict
    runs: pd.DataFrame  # variant x seed (finished): best_val_loss, final_loss, best_val_accuracy
    per_class: pd.DataFrame  # variant x seed x class: val_loss, val_accuracy
    affinity: pd.DataFrame  # seed x augmentation: affinity (no-augmentation model)
    curves: pd.DataFrame  # variant x seed x epoch: history columns
    failed: pd.DataFrame  # variant, seed, reason
    chance: float | None = None  # the loss of guessing, as the parent run recorded it
    num_classes: int | None = None
    epochs: int = 0  # the epochs each variant trained
    image_size: str = "?"
    provenance: dict = field(default_factory=dict)  # ablation id, commit, device, dataset fingerprint


@dataclass(frozen=True)
class ReportInputs:
    """Everything one report reads: the sweep's data (None without a study) and the latest ablation's (None
    without one), and where the stores are, as commands name them."""

    study_name: str
    mlruns: str
    tracking_uri: str
    sweep: SweepData | None = None
    ablation: AblationData | None = None
