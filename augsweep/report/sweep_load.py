"""The sweep's part of the report, loading: the only functions that read the Optuna study and MLflow for it,
once, into one immutable `SweepData` (trials, trainings, learning curves, the parent run's provenance, Optuna's
importance). Keys come from `stores.records`; nothing here computes a statistic.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..experiment.schema import Experiment
from ..experiment.space import aug_key
from ..stores import records as rec
from ..stores.records import StudyRecord, TrialRecord
from ..stores.study import Stores, trainings_table
from .inputs import ParentRun, Population, SweepData


def trials_by_number(study) -> pd.DataFrame:
    """One row per trial: number, state, value, flat config, MLflow run id, failure reason."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.from_trial(t)
        rows.append({
            "trial": record.number, "state": record.state, "value": record.value,
            "mlflow_run_id": record.mlflow_run_id, "mlflow_run": record.run_name,
            "failure_reason": "" if record.failure_reason is None else record.failure_reason,
            "block": record.block, "design_point": record.design_point,
            "config_name": "" if record.config_name is None else record.config_name,
            **(record.config or {}),
        })
    return pd.DataFrame(rows)


def load_curves(client, tracking_uri: str, experiment_name: str, trials: pd.DataFrame,
                augmentations: list[str]) -> pd.DataFrame:
    """Per-epoch histories (`history.csv` artifacts) of complete and pruned trials, with their factors.

    The files are read in bulk where the experiment's artifact location says they are (`stores.run_files`)."""
    from ..stores.run_files import artifact_uris, read_csv, read_run_files

    if not len(trials):
        return pd.DataFrame()
    done = trials[trials["state"].isin(["COMPLETE", "PRUNED"])]
    ids = [r for r in done["mlflow_run_id"] if isinstance(r, str) and r]
    uris = artifact_uris(client, experiment_name, ids)
    histories = read_run_files(tracking_uri, {r: uris.get(r) for r in ids}, "history.csv", read_csv)
    # A trial pruned before its first epoch has no history.
    rows = [t for _, t in done.iterrows() if t["mlflow_run_id"] in histories]
    if not rows:
        return pd.DataFrame()
    frames = [histories[t["mlflow_run_id"]] for t in rows]
    if any(list(f.columns) != list(frames[0].columns) for f in frames):  # pandas orders such a union its own way
        return pd.concat([f.assign(**trial_factors(t, augmentations)) for f, t in zip(frames, rows)],
                         ignore_index=True)
    # One concat, then each factor repeated over its trial's rows: the frame the per-trial assign-and-concat
    # made (same columns, dtypes and values), without 1,000 small frames.
    factors = pd.DataFrame([trial_factors(t, augmentations) for t in rows])
    lengths = [len(f) for f in frames]
    curves = pd.concat(frames, ignore_index=True)
    return curves.assign(**{c: np.repeat(factors[c].to_numpy(), lengths) for c in factors.columns})


def trial_factors(t: pd.Series, augmentations: list[str]) -> dict:
    """The columns a trial's curves carry: `trial`, `depth`, `aug_key(name)` (a switch, False when not logged)."""
    out = {"trial": t["trial"], "depth": t.get("depth")}
    for a in augmentations:
        on = t.get(aug_key(a), False)
        out[aug_key(a)] = bool(on) if isinstance(on, (bool, np.bool_)) else False
    return out


def load_parent(client, stores: Stores, run_id: str | None) -> ParentRun:
    """The sweep's parent run: its tags, the package versions it recorded and its params, or why they could not
    be read (a lost tracking server, a deleted run) in `problem`."""
    from ..stores.run_files import read_run_files
    from ..stores.urls import first_line

    if not run_id:
        return ParentRun()
    try:
        run = client.get_run(run_id)
    except Exception as e:  # noqa: BLE001 - any failure is stated in the report, with its reason
        return ParentRun(problem=f"the sweep's parent run {run_id} could not be read from {stores.tracking_label}: "
                                 f"{type(e).__name__}: {first_line(e, stores.tracking_uri)}")
    problem = None
    try:
        versions = read_run_files(stores.tracking_uri, {run_id: run.info.artifact_uri}, "versions.yaml",
                                  lambda path: yaml.safe_load(path.read_text())).get(run_id)
    except Exception as e:  # noqa: BLE001 - as above
        versions = {}
        problem = (f"the package versions of the sweep's parent run {run_id} could not be read: "
                   f"{type(e).__name__}: {first_line(e, stores.tracking_uri)}")
    return ParentRun(dict(run.data.tags), versions or {}, dict(run.data.params), problem)


def importance(study) -> tuple[pd.DataFrame | None, str]:
    """Optuna's fANOVA importance (seeded) as a secondary, unsigned view."""
    import optuna

    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError, ArithmeticError, AssertionError) as e:  # fANOVA asserts on absurd values
        return None, f"not available: {(str(e).splitlines() or [type(e).__name__])[0]}"
    frame = pd.DataFrame({"parameter": list(values), "importance": list(values.values())})
    return frame.sort_values(["importance", "parameter"], ascending=[False, True]), "FanovaImportanceEvaluator(seed=0)"


def file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def provenance(exp: Experiment, stores: Stores, stored: StudyRecord, parent: ParentRun) -> dict:
    """The report's Provenance section: the experiment as run, the study, the parent run's commit, device,
    backend and package versions, and the commands that rerun it; a parent run that could not be read says why."""
    tags = parent.tags
    out = {
        "experiment_file": exp.path,
        "experiment_file_sha256": file_sha256(exp.path),
        "resolved_experiment_sha256": exp.sha256(),
        "study": stores.study_name,
        "git_commit": tags.get(rec.TAG_GIT_COMMIT, "unknown"),
        "device": tags.get(rec.TAG_DEVICE, "unknown"),
        "backend": tags.get(rec.TAG_BACKEND, "unknown"),
        "dataset_fingerprint": "unknown" if stored.dataset_fingerprint is None else stored.dataset_fingerprint,
        "package_versions": parent.versions,
        "rerun_sweep": stores.command("sweep.py", exp),
        "rerun_report": stores.command("report.py", exp),
    }
    if parent.problem:
        out["unreadable"] = parent.problem
    return out


def load_sweep(exp: Experiment, stores: Stores, study, client) -> SweepData:
    """Everything the report uses about the sweep, read once (`client`: the report's one `MlflowClient`)."""
    augs = exp.search_space.augmentation_names
    stored = StudyRecord.from_study(study)
    trials = trials_by_number(study)
    trainings = trainings_table(study, augs)
    if len(trainings):
        trainings = trainings.assign(value=trainings["best_val_loss"])
    parent = load_parent(client, stores, stored.parent_run_id)
    classes = str(parent.params.get(rec.PARAM_CLASSES, ""))
    return SweepData(
        trials=trials, trainings=trainings,
        curves=load_curves(client, stores.tracking_uri, exp.name, trials, augs),
        importance=importance(study), design=stored.design, stopped=stored.stopped, parent=parent,
        provenance=provenance(exp, stores, stored, parent), chance=rec.chance_of(parent.params),
        num_classes=int(classes) if classes.isdigit() else None, commands=stores.follow_ups(exp),
        parent_run_id=stored.parent_run_id,
        population=Population(rec.split_per_replicate(parent.params), parent.params.get("train_images")))
