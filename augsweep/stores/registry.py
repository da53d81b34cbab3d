"""MLflow's own conventions for the answer: the best model in the Model Registry (Keras flavor, signature and
input example) and the answer as the experiment's description (the note MLflow's UI shows on its page).

The Model Registry needs a database-backed tracking store or a tracking server: the embedded store is
`sqlite:///MLRUNS/mlflow.db` (`tracking.tracking_uri_for`), so both kinds of stores hold it.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

NOTE_TAG = "mlflow.note.content"  # what MLflow's UI shows as the experiment's (and a run's) description
MODEL_ARTIFACT = "model.keras"  # a trial run's trained model (runs.repeat writes it)
LOGGED_NAME = "best_model"  # the logged model's name in the run that holds it
SOURCE_TAG = "augsweep_source"  # on a model version: `<trial run id>/<repeat>`, to register a model only once


def registered_name(study: str) -> str:
    """`<study>-best`."""
    return f"{study}-best"


def set_experiment_note(client, experiment_id: str, text: str) -> None:
    """The experiment's description in MLflow's UI."""
    client.set_experiment_tag(experiment_id, NOTE_TAG, text)


def download_model(client, run_id: str, dst: str | Path) -> Path | None:
    """A trial run's `model.keras` downloaded into `dst` (read where it lies in a local store, moved or not);
    None when the run holds none (older stores)."""
    from .run_files import local_folder

    try:
        folder = local_folder(client.get_run(run_id).info.artifact_uri)
    except Exception:  # noqa: BLE001 - no such run: MLflow's listing below says so
        folder = None
    if folder is not None and (folder / MODEL_ARTIFACT).is_file():
        return folder / MODEL_ARTIFACT
    try:
        names = {a.path for a in client.list_artifacts(run_id)}
    except Exception:  # noqa: BLE001 - a run whose artifacts cannot be listed holds no model we can use
        return None
    if MODEL_ARTIFACT not in names:
        return None
    return Path(client.download_artifacts(run_id, MODEL_ARTIFACT, str(dst)))


@contextlib.contextmanager
def _fluent(tracking_uri: str, experiment_id: str):
    """MLflow's fluent API pointed at these stores, and put back after (a notebook may use it too)."""
    import mlflow
    from mlflow.tracking import fluent

    uri, active = mlflow.get_tracking_uri(), fluent._active_experiment_id
    mlflow.set_tracking_uri(tracking_uri)
    fluent._active_experiment_id = experiment_id
    try:
        yield mlflow
    finally:
        mlflow.set_tracking_uri(uri)
        fluent._active_experiment_id = active


def current_version(client, name: str, source: str):
    """The registered model's latest version when it already is `source`'s model, else None."""
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except Exception:  # noqa: BLE001 - no registered model of that name yet
        return None
    if not versions:
        return None
    latest = max(versions, key=lambda v: int(v.version))
    return latest if latest.tags.get(SOURCE_TAG) == source else None


def register_best(client, tracking_uri: str, experiment_id: str, name: str, model_file: Path, source_run_id: str,
                  repeat: int, log_run_id: str, description: str = "", tags: dict | None = None):
    """Log the Keras model in `model_file` with MLflow's Keras flavor (signature and input example) into run
    `log_run_id` and register it as `name`; a new version only when the best model changed (`source_run_id`,
    `repeat`). Returns the model version."""
    import keras
    import numpy as np
    from mlflow.models import infer_signature

    source = f"{source_run_id}/{repeat}"
    existing = current_version(client, name, source)
    if existing is not None:
        return existing
    model = keras.saving.load_model(model_file)
    example = np.full((1, *model.input_shape[1:]), 0.5, dtype=np.float32)  # a mid-grey image in [0, 1]
    signature = infer_signature(example, np.asarray(model.predict(example, verbose=0)))
    requirements = [f"keras=={keras.__version__}"]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        requirements.append(f"tensorflow=={tf.__version__}")
    with _fluent(tracking_uri, experiment_id) as mlflow, tempfile.TemporaryDirectory() as tmp:
        # Saved, then logged and registered: `mlflow.keras.log_model` with an input example fails in MLflow 3.17
        # (its save_model writes input_example.json before creating the model folder); saving into an existing
        # folder is the documented path that works. Requirements are given: inferring them would load the model
        # again in a fresh Python (seconds).
        local = Path(tmp) / LOGGED_NAME
        local.mkdir()
        mlflow.keras.save_model(model, str(local), signature=signature, input_example=example,
                                pip_requirements=requirements)
        where = f"{LOGGED_NAME}/{source_run_id}-r{repeat}"  # one folder per model: older versions keep theirs
        client.log_artifacts(log_run_id, str(local), where)
        info = mlflow.register_model(f"runs:/{log_run_id}/{where}", name,
                                     tags={k: str(v) for k, v in (tags or {}).items()} or None)
    version = info.version
    client.set_model_version_tag(name, str(version), SOURCE_TAG, source)
    if description:
        client.update_model_version(name, str(version), description=description)
    return client.get_model_version(name, str(version))


def temp_folder():
    """A scratch folder for downloads (removed on exit)."""
    return tempfile.TemporaryDirectory(prefix="augsweep-model-")
