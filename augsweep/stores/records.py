"""The stored record format: every key augsweep writes to the Optuna study (study and trial attributes) and
to MLflow (tags, artifact names, run searches), and the typed records its writers and readers share.

One file answers "where is this key written and read?": a key is a constant here, and the records below
(`TrialRecord.from_trial`, `design_attrs`, `retry_attrs`, `StudyRecord`) are what every writer and reader
goes through. The flat configuration keys `aug_<name>[_<param>]` (Optuna params, the `config` attribute,
MLflow params) belong to the search space that suggests them: `experiment.space.aug_key`/`parse_aug_key`.
The values stay as they always were, so existing studies and runs read the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# ----------------------------------------------------------------------------- Optuna study user attributes

# Written once per sweep by `runs.sweep.open_study`; read by the report, recovery and `--repair`.
ATTR_PARENT_RUN = "mlflow_parent_run_id"  # the sweep's MLflow parent run
ATTR_EXPERIMENT_HASH = "experiment_sha256"  # `experiment.identity`: a resume must not change it
ATTR_TRACKING_URI = "mlflow_tracking_uri"  # masked; resolved back by `tracking.client_for`
ATTR_EXPERIMENT = "experiment"  # the resolved experiment (its `name` is the MLflow experiment's)
ATTR_DATASET_FINGERPRINT = "dataset_fingerprint"
# Written by a factorial sweep's planner (`runs.blocks`); read by the report.
ATTR_DESIGN = "design"  # what the design is: block size, cap of blocks, magnitudes
ATTR_STOPPED = "stopped"  # why `stop: decided` stopped the sweep

# ----------------------------------------------------------------------------- Optuna trial user attributes

CONFIG = "config"  # the flat configuration (`TrialConfig.flat`), written first by the objective
BLOCK = "block"  # a factorial design's block (0-based): its seeds; enqueued with the trial
DESIGN_POINT = "design_point"  # the point's index within its block
SEED_ATTEMPT = "seed_attempt"  # > 0: a retry on fresh seeds in the same seed slots
RETRY_OF = "retry_of"  # the failed trial this one retries
MLFLOW_RUN_ID = "mlflow_run_id"  # the trial's MLflow run
MLFLOW_RUN_URL = "mlflow_run_url"  # a link to it (what optuna-dashboard shows)
CONFIG_NAME = "config_name"  # `TrialConfig.label()`: also the MLflow run's name after `tNN `
REPEATS = "repeats"  # one summary dict per repeat (`training.checks`): best_val_loss, gap, ...
FAILURE_REASON = "failure_reason"  # one line; also the MLflow run's tag of the same name
WORKER = "worker"  # `liveness.worker_identity()`: host, pid, process start

# Optuna trial system attributes (Optuna's own convention for a retried trial, as in
# RetryHeartbeatStaleTrialCallback).
SYS_FAILED_TRIAL = "failed_trial"  # set on a retry: the number of the trial it retries
SYS_RETRY_HISTORY = "retry_history"


@dataclass(frozen=True)
class TrialRecord:
    """What augsweep stored on one Optuna trial, read back (absent keys: None, or the defaults below)."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL | RUNNING | WAITING
    value: float | None
    config: dict | None = None
    block: int | None = None
    design_point: int | None = None
    seed_attempt: int = 0
    mlflow_run_id: str | None = None
    config_name: str | None = None
    failure_reason: str | None = None
    repeats: list = field(default_factory=list)
    worker: dict | None = None

    @classmethod
    def from_trial(cls, trial) -> "TrialRecord":
        a = trial.user_attrs
        return cls(number=trial.number, state=trial.state.name, value=trial.value, config=a.get(CONFIG),
                   block=a.get(BLOCK), design_point=a.get(DESIGN_POINT), seed_attempt=int(a.get(SEED_ATTEMPT, 0)),
                   mlflow_run_id=a.get(MLFLOW_RUN_ID), config_name=a.get(CONFIG_NAME),
                   failure_reason=a.get(FAILURE_REASON), repeats=a.get(REPEATS) or [], worker=a.get(WORKER))

    def to_attrs(self) -> dict[str, Any]:
        """The user attributes this record stands for (only those set), as the writers store them."""
        out = {CONFIG: self.config, BLOCK: self.block, DESIGN_POINT: self.design_point,
               SEED_ATTEMPT: self.seed_attempt or None, MLFLOW_RUN_ID: self.mlflow_run_id,
               CONFIG_NAME: self.config_name, FAILURE_REASON: self.failure_reason, REPEATS: self.repeats or None,
               WORKER: self.worker}
        return {k: v for k, v in out.items() if v is not None}

    @property
    def run_name(self) -> str:
        """`t07 d2 flip+rotation`, the trial's MLflow run name ("" before the objective named it)."""
        return f"t{self.number:02d} {self.config_name}" if self.config_name is not None else ""


def design_attrs(block: int, point: int) -> dict[str, int]:
    """The user attributes a factorial design point is enqueued with (`runs.blocks`)."""
    return {BLOCK: block, DESIGN_POINT: point}


def retry_attrs(trial, fresh_seeds: bool) -> tuple[dict, dict]:
    """(user attrs, system attrs) of the retry of a failed `trial`: the design's block and point travel with
    it (its seeds and its place in the design); `fresh_seeds` moves it to the next seed attempt. System
    attrs carry over (GridSampler's grid_id: the retry is the same grid point); the other user attrs belong to
    the dead run and do not."""
    user = {RETRY_OF: trial.number,
            **{k: trial.user_attrs[k] for k in (BLOCK, DESIGN_POINT) if k in trial.user_attrs},
            **({SEED_ATTEMPT: int(trial.user_attrs.get(SEED_ATTEMPT, 0)) + 1} if fresh_seeds else {})}
    system = {**trial.system_attrs, SYS_FAILED_TRIAL: trial.number, SYS_RETRY_HISTORY: [trial.number]}
    return user, system


def is_retry(trial) -> bool:
    """Whether a trial is itself a retry (a configuration gets one second chance)."""
    return trial.system_attrs.get(SYS_FAILED_TRIAL) is not None


def retried_numbers(trials) -> set:
    """Numbers of the trials that some trial in `trials` retries."""
    return {t.system_attrs.get(SYS_FAILED_TRIAL) for t in trials}


@dataclass(frozen=True)
class StudyRecord:
    """What a sweep stores on its Optuna study, read back (absent keys: None)."""

    parent_run_id: str | None = None
    experiment_sha256: str | None = None
    tracking_uri: str | None = None
    experiment: dict | None = None
    dataset_fingerprint: str | None = None
    design: dict | None = None
    stopped: str | None = None

    @classmethod
    def from_study(cls, study) -> "StudyRecord":
        a = study.user_attrs
        return cls(parent_run_id=a.get(ATTR_PARENT_RUN), experiment_sha256=a.get(ATTR_EXPERIMENT_HASH),
                   tracking_uri=a.get(ATTR_TRACKING_URI), experiment=a.get(ATTR_EXPERIMENT),
                   dataset_fingerprint=a.get(ATTR_DATASET_FINGERPRINT), design=a.get(ATTR_DESIGN),
                   stopped=a.get(ATTR_STOPPED))

    def to_attrs(self) -> dict[str, Any]:
        """The study attributes this record stands for (only those set)."""
        out = {ATTR_PARENT_RUN: self.parent_run_id, ATTR_EXPERIMENT_HASH: self.experiment_sha256,
               ATTR_TRACKING_URI: self.tracking_uri, ATTR_EXPERIMENT: self.experiment,
               ATTR_DATASET_FINGERPRINT: self.dataset_fingerprint, ATTR_DESIGN: self.design,
               ATTR_STOPPED: self.stopped}
        return {k: v for k, v in out.items() if v is not None}

    def experiment_name(self, default: str) -> str:
        """The MLflow experiment the study's runs are in (the study's name for studies that predate it)."""
        return (self.experiment or {}).get("name", default)


# ----------------------------------------------------------------------------- MLflow run tags

TAG_KIND = "kind"  # what a run is: one of the KIND_* below
KIND_SWEEP = "sweep"  # a sweep's parent run
KIND_TRIAL = "trial"  # one Optuna trial (nested under the sweep's parent)
KIND_ABLATION = "ablation"  # an ablation's parent run
KIND_ABLATION_RUN = "ablation-run"  # one variant x seed of an ablation (nested)
TAG_PARENT_RUN = "mlflow.parentRunId"  # MLflow's own nesting tag

TAG_STUDY = "study"  # the Optuna study a run belongs to (trials, sweeps, ablations)
TAG_TRIAL = "trial"  # a trial run's Optuna trial number
TAG_STATE = "state"  # how a trial run ended: COMPLETE | PRUNED | FAIL
TAG_FAILURE_REASON = FAILURE_REASON  # one line, the same as the trial's user attribute
TAG_PRUNE_REASON = "prune_reason"
TAG_MODEL_REPEAT = "model_repeat"  # which repeat's model a trial run's `model.keras` holds

# Provenance of parent and trial runs (read back by the report and `--reproduce`).
TAG_GIT_COMMIT = "git_commit"
TAG_DEVICE = "device"
TAG_BACKEND = "backend"
TAG_DATASET_FINGERPRINT = "dataset_fingerprint"
TAG_DETERMINISTIC = "deterministic"  # "true" | "false"
TAG_TRAINING_THREADS = "training_threads"  # "1": one CPU thread per op (`runtime.training_threads_tag`)
TAG_DTYPE_POLICY = "dtype_policy"


def env_tags(env) -> dict[str, str]:
    """How a process trains (`runtime.RunEnv`), as the tags of the runs it writes: parent runs, trials, variants."""
    return {TAG_DEVICE: env.device, TAG_DTYPE_POLICY: env.dtype_policy,
            TAG_DETERMINISTIC: str(env.deterministic).lower(), TAG_BACKEND: env.backend,
            TAG_TRAINING_THREADS: env.training_threads}

# The ablation's runs (`runs.ablation` writes them, the report and `--reproduce` read them).
TAG_ABLATION_ID = "ablation_id"  # hash of the experiment, the base and the seeds
TAG_VARIANTS = "variants"  # comma-separated names of the variants one training stands for
TAG_VARIANT_KEY = "variant_key"  # `experiment.variants.config_key` of what it trained
TAG_SEED_INDEX = "seed_index"  # the seed replicate
TAG_FAILED_TRAININGS = "failed_trainings"  # on the ablation's parent
SPEC_ARTIFACT = "ablation.json"  # the ablation's design, an artifact of its parent run

# ----------------------------------------------------------------------------- MLflow parent-run params

PARAM_CLASSES = "classes"  # the dataset's number of classes
PARAM_CHANCE = "chance_val_loss"  # the loss of guessing the validation classes' prior (`learned.chance_loss_of`)
# How the data was split: `replicate` (each seed replicate drew its own training/validation split; its runs log
# which in `split_r<r>`) or `fixed` (one split for every training; also what a run without the param means).
PARAM_DATA_SPLIT = "data_split"
SPLIT_REPLICATE, SPLIT_FIXED = "replicate", "fixed"


def data_split(per_replicate: bool) -> str:
    """The `data_split` param's value."""
    return SPLIT_REPLICATE if per_replicate else SPLIT_FIXED


def split_per_replicate(params: dict) -> bool:
    """Whether a parent run's trainings drew a split per seed replicate (False for runs logged before they could)."""
    return params.get(PARAM_DATA_SPLIT) == SPLIT_REPLICATE


def chance_of(params: dict) -> float | None:
    """The chance loss a parent run recorded; ln K from its class count for runs written before it; else None."""
    import math

    try:
        if PARAM_CHANCE in params:
            return float(params[PARAM_CHANCE])
        if PARAM_CLASSES in params:
            return math.log(max(int(params[PARAM_CLASSES]), 2))
    except (TypeError, ValueError):
        pass
    return None


def kind_filter(kind: str, study: str | None = None) -> str:
    """MLflow search filter for runs of a kind (and of a study)."""
    text = f"tags.{TAG_KIND} = '{kind}'"
    return text if study is None else f"{text} and tags.{TAG_STUDY} = '{study}'"


def children_filter(parent_run_id: str, kind: str | None = None) -> str:
    """MLflow search filter for the runs nested under a parent (of a kind)."""
    text = f"tags.{TAG_PARENT_RUN} = '{parent_run_id}'"
    return text if kind is None else f"{text} and tags.{TAG_KIND} = '{kind}'"


def variant_names(tags: dict) -> list[str]:
    """The ablation variants one nested run trained for (its `variants` tag)."""
    return [n for n in tags.get(TAG_VARIANTS, "").split(",") if n]


def latest_ablation(client, experiment_id: str):
    """The most recent ablation parent run of an MLflow experiment, or None."""
    runs = client.search_runs([experiment_id], kind_filter(KIND_ABLATION),
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None
