"""The ablation's part of the report, loading: the only function that reads the latest ablation from MLflow
(`load_ablation`), once, into one `AblationData`; keys come from `stores.records`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..stores import records as rec
from ..stores.records import KIND_ABLATION_RUN, SPEC_ARTIFACT, latest_ablation
from ..stores.tracking import client_for
from .inputs import AblationData


def load_ablation(tracking_uri: str, experiment_name: str, client=None) -> AblationData | None:
    """The latest ablation parent run of the experiment and its nested runs, or None (`client`: the report's
    `MlflowClient`, made here when not given)."""
    import json

    from ..stores.run_files import read_csv, read_run_files

    client = client or client_for(tracking_uri)
    mexp = client.get_experiment_by_name(experiment_name)
    if mexp is None:
        return None
    parent = latest_ablation(client, mexp.experiment_id)
    if parent is None:
        return None
    pid = parent.info.run_id
    specs = read_run_files(tracking_uri, {pid: parent.info.artifact_uri}, SPEC_ARTIFACT,
                           lambda p: json.loads(p.read_text()))
    if pid in specs:
        spec = specs[pid]
    else:  # MLflow's own download, which says what is wrong
        with tempfile.TemporaryDirectory() as tmp:
            spec = json.loads(Path(client.download_artifacts(pid, SPEC_ARTIFACT, tmp)).read_text())
    children = client.search_runs([mexp.experiment_id], rec.children_filter(pid, KIND_ABLATION_RUN),
                                  max_results=50_000)
    # The search already holds every child's artifact folder: read the histories in bulk, not one download each.
    histories = read_run_files(tracking_uri, {r.info.run_id: r.info.artifact_uri for r in children
                                              if r.info.status == "FINISHED"}, "history.csv", read_csv)
    runs, classes, affinity, curves, failed = [], [], [], [], []
    for run in sorted(children, key=lambda r: (r.data.tags.get(rec.TAG_VARIANTS, ""),
                                               r.data.tags.get(rec.TAG_SEED_INDEX, ""))):
        tags, m = run.data.tags, run.data.metrics
        names = rec.variant_names(tags)
        seed = int(tags.get(rec.TAG_SEED_INDEX, -1))
        if run.info.status != "FINISHED":
            failed += [{"variant": n, "seed": seed, "status": run.info.status,
                        "reason": tags.get(rec.TAG_FAILURE_REASON, "")} for n in names]
            continue
        history = histories.get(run.info.run_id)
        for n in names:
            runs.append({"variant": n, "seed": seed, "best_val_loss": m.get("best_val_loss", np.nan),
                         "final_loss": m.get("final_loss", np.nan),
                         "best_val_accuracy": m.get("best_val_accuracy", np.nan), "run_id": run.info.run_id})
            for key, value in m.items():
                if key.startswith("class_val_loss/"):
                    cls = key.split("/", 1)[1]
                    classes.append({"variant": n, "seed": seed, "class": cls, "val_loss": value,
                                    "val_accuracy": m.get(f"class_val_accuracy/{cls}", np.nan)})
            if history is not None:
                curves.append(history.assign(variant=n, seed=seed))
        for key, value in m.items():
            if key.startswith("affinity/"):
                affinity.append({"seed": seed, "augmentation": key.split("/", 1)[1], "affinity": value})
    tags, params = dict(parent.data.tags), dict(parent.data.params)
    class_count = str(params.get(rec.PARAM_CLASSES, ""))
    return AblationData(
        parent_run_id=pid, spec=spec,
        runs=pd.DataFrame(runs, columns=["variant", "seed", "best_val_loss", "final_loss", "best_val_accuracy",
                                         "run_id"]),
        per_class=pd.DataFrame(classes, columns=["variant", "seed", "class", "val_loss", "val_accuracy"]),
        affinity=pd.DataFrame(affinity, columns=["seed", "augmentation", "affinity"]).drop_duplicates(),
        curves=pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(),
        failed=pd.DataFrame(failed, columns=["variant", "seed", "status", "reason"]),
        chance=rec.chance_of(params), num_classes=int(class_count) if class_count.isdigit() else None,
        epochs=int(params.get("epochs", 0) or 0), image_size=str(params.get("image_size", "?")),
        provenance={"ablation_id": tags.get(rec.TAG_ABLATION_ID, ""),
                    "git_commit": tags.get(rec.TAG_GIT_COMMIT, "unknown"),
                    "device": tags.get(rec.TAG_DEVICE, "unknown"),
                    "dataset_fingerprint": tags.get(rec.TAG_DATASET_FINGERPRINT, "unknown")},
    )
