"""The sweep's part of the report, loading: the only functions that read the Optuna study and MLflow (trials,
tidy table, learning curves, the parent run's provenance, Optuna's importance). Keys come from
`stores.records`; statistics are `sweep_analysis`'s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from ..experiment.space import aug_key
from ..stores.records import TrialRecord
from ..stores.study import trial_table


def trials_frame(study) -> pd.DataFrame:
    """One row per trial: number, state, value, flat config, MLflow run id, failure reason."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rec = TrialRecord.from_trial(t)
        rows.append({
            "trial": rec.number, "state": rec.state, "value": rec.value,
            "mlflow_run_id": rec.mlflow_run_id, "mlflow_run": rec.run_name,
            "failure_reason": "" if rec.failure_reason is None else rec.failure_reason,
            "block": rec.block, "design_point": rec.design_point,
            "config_name": "" if rec.config_name is None else rec.config_name,
            **(rec.config or {}),
        })
    return pd.DataFrame(rows)

def tidy_table(study, augmentations: list[str]) -> pd.DataFrame:
    """One row per (trial, repeat) of COMPLETE trials (`stores.study.trial_table`), `value` = best val_loss."""
    table = trial_table(study, augmentations)
    return table.assign(value=table["best_val_loss"]) if len(table) else table

def load_curves(client, tracking_uri: str, experiment_name: str, trials: pd.DataFrame,
                augmentations: list[str]) -> pd.DataFrame:
    """Per-epoch histories (`history.csv` artifacts) of complete and pruned trials, with their factors.

    The files are read in bulk where the experiment's artifact location says they are (`stores.run_files`)."""
    from ..stores.run_files import artifact_uris, read_run_files

    done = trials[trials["state"].isin(["COMPLETE", "PRUNED"])]
    ids = [r for r in done["mlflow_run_id"] if isinstance(r, str) and r]
    uris = artifact_uris(client, experiment_name, ids)
    histories = read_run_files(tracking_uri, {r: uris.get(r) for r in ids}, "history.csv", pd.read_csv)
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

def missing_curves(trials: pd.DataFrame, curves: pd.DataFrame) -> list[int]:
    """Numbers of the COMPLETE trials whose history the report could not read."""
    done = trials.loc[trials["state"] == "COMPLETE", "trial"].astype(int) if len(trials) else pd.Series(dtype=int)
    have = set(curves["trial"].astype(int)) if len(curves) else set()
    return sorted(n for n in done if n not in have)

def trial_factors(t: pd.Series, augmentations: list[str]) -> dict:
    """The columns a trial's curves carry: `trial`, `depth`, `aug_<name>` (a switch, False when not logged)."""
    out = {"trial": t["trial"], "depth": t.get("depth")}
    for a in augmentations:
        on = t.get(aug_key(a), False)
        out[aug_key(a)] = bool(on) if isinstance(on, (bool, np.bool_)) else False
    return out

def load_parent(client, tracking_uri: str, run_id: str | None) -> tuple[dict, dict, dict]:
    """Tags of the sweep's parent run, the package versions it recorded, and its params."""
    from ..stores.run_files import read_run_files

    if not run_id:
        return {}, {}, {}
    try:
        run = client.get_run(run_id)
    except Exception:
        return {}, {}, {}
    try:
        versions = read_run_files(tracking_uri, {run_id: run.info.artifact_uri}, "versions.yaml",
                                  lambda path: yaml.safe_load(path.read_text())).get(run_id)
    except Exception:
        versions = {}
    return dict(run.data.tags), versions or {}, dict(run.data.params)

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
