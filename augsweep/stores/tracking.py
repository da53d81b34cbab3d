"""MLflow: one parent run per sweep, one nested run per trial, per-epoch metrics, artifacts.

Everything goes through `MlflowClient` with explicit run ids (no fluent global state), so the
same code serves several workers and resumed sweeps. The store is SQLite under `mlruns/`
with the artifact folder beside it (MLflow 3.13+ refuses the old file store), or an MLflow
tracking server (`http://…`) with proxied artifacts, shared by workers on many machines.

Every tag and param value is sent as a string: the REST store rejects anything else.
A tracking server that goes away mid-sweep (restart, network) is retried with backoff by
MLflow's HTTP session for a bounded time (`HTTP_RETRY`, about a minute by default); after that
the call fails with a `TrackingUnavailable` naming the server, which fails the trial. A run create whose
answer was lost is looked up before it is sent again (`create_run`), so a restart makes no second run.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .. import runtime
from ..runtime import store_write
from .seed import seed_database
from .urls import sqlite_file

# MLflow's SQLite store runs Alembic migrations on first use and logs each step at INFO.
for _name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking.fluent", "mlflow.store.sql"):
    logging.getLogger(_name).setLevel(logging.WARNING)

FINISHED, FAILED, KILLED, RUNNING = "FINISHED", "FAILED", "KILLED", "RUNNING"
# MLflow's HTTP settings for a tracking server, unless the user set them: 6 retries with backoff
# 0, 2, 4, 8, 16, 32 s (about a minute, enough for a server restart) and a 30 s read timeout,
# instead of MLflow's ~4 minutes of retries and 120 s timeouts; and no "View run at URL" lines
# (one per run, and the URL would carry a password written into the tracking URI).
HTTP_RETRY = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "6", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": "30", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
# masked URI (as recorded in the study) -> the URI this process was given: not a cache, the one place a password
# given on the command line lives while the process runs (stores hold the masked form only)
_REAL_URIS: dict[str, str] = {}
LIVE_AFTER = 30.0  # seconds into a trial after which its epochs are written while it trains (see epoch_logger)
# ... at most this often: with 4 workers on 2 cores a default trial takes ~56 s, and one write per epoch after
# 30 s was ~100 SQLite commits a trial, 4 writers contending for the store's lock
LIVE_EVERY = 5.0


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking server did not answer within the bounded retries."""


def is_remote(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def tracking_uri_for(mlruns: str | Path) -> str:
    """SQLite tracking URI of the embedded store under `mlruns`."""
    return f"sqlite:///{Path(mlruns).resolve() / 'mlflow.db'}"


def artifact_root_for(mlruns: str | Path) -> str:
    """Artifact folder of the embedded store, beside the database."""
    return (Path(mlruns).resolve() / "artifacts").as_uri()


def client_for(tracking_uri: str):
    """An `MlflowClient` on the URI (SQLite connections tuned first: see `runtime.tune_sqlite`; a
    server's HTTP retries bounded: `HTTP_RETRY`). A masked URI recorded in the study (see
    `urls.mask`) is resolved to the one this process was given."""
    from mlflow import MlflowClient

    runtime.tune_sqlite()
    # Every artifact download of this process (reports, the registry, bulk reads) comes after a client: MLflow
    # would draw one progress bar per file.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    tracking_uri = remember_uri(tracking_uri)
    check_schema(tracking_uri)
    db = sqlite_file(tracking_uri)
    if db is not None:
        seed_database(db)
    if is_remote(tracking_uri):
        for key, value in HTTP_RETRY.items():
            os.environ.setdefault(key, value)
    return MlflowClient(tracking_uri=tracking_uri)


_SCHEMA_CHECKED: set[str] = set()


def check_schema(tracking_uri: str) -> None:
    """Refuse, in one line, an embedded store whose database another MLflow version wrote: MLflow itself would
    fail at the first call with a traceback. An older schema gets the command that upgrades it; a newer one
    (a revision this MLflow does not know) is left for the MLflow that wrote it. Read-only: nothing is written."""
    path = sqlite_file(tracking_uri)
    if path is None or tracking_uri in _SCHEMA_CHECKED or not path.is_file():
        return
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            found = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return  # no alembic table (a store MLflow has not initialised yet) or not a database: MLflow says which
    if found is None:
        return
    import mlflow
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision

    head = _get_latest_schema_revision()
    if found[0] != head:
        from ..experiment.schema import ConfigError

        try:
            ScriptDirectory.from_config(_get_alembic_config(tracking_uri)).get_revision(found[0])
            older = True
        except Exception:  # alembic raises its own error types for a revision it does not know
            older = False
        what = (f"back it up, then upgrade it with `.venv/bin/mlflow db upgrade {tracking_uri}`" if older
                else "open it with the newer MLflow that wrote it")
        raise ConfigError(f"{path}: MLflow database schema {found[0]} was written by "
                          f"{'an older' if older else 'a newer'} MLflow (MLflow {mlflow.__version__} here expects "
                          f"{head}): {what}")
    _SCHEMA_CHECKED.add(tracking_uri)


def _unreachable(e: BaseException) -> bool:
    text = str(e)
    return ("Max retries exceeded" in text or "ConnectionError" in type(e).__name__
            or "Connection refused" in text or "timed out" in text.lower())


# Answers that say a tracking server may have done the call but its answer was lost: a dropped connection, or a
# 5xx from a server that is restarting. (A refused connection is retried by MLflow's session itself.)
_LOST_ANSWER = ("Connection aborted", "RemoteDisconnected", "Connection reset", "failed with error code 5")
CREATE_TRIES = 4  # calls of one run create at most, 0.5, 1, 2 s apart and each with MLflow's own retries of a
# refused connection (about a minute): a restart of the server fits in between


def create_run(client, experiment_id: str, tags: Mapping[str, str], run_name: str, remote: bool):
    """`client.create_run`, exactly one run even when a tracking server's answer is lost.

    MLflow sends a create again only when it surely did not arrive (a second send after the server made the run
    would make a second run, left RUNNING), so a server restarted mid-call would fail the trial. Here the run's
    start time is fixed before the first call: after a lost answer the run is looked up by its name and that start
    time, and the call is sent again only if the server never made it.
    """
    start_time, tries = _now_ms(), CREATE_TRIES if remote else 1  # an embedded store answers or raises: no retry
    for attempt in range(tries):
        try:
            return client.create_run(experiment_id, start_time=start_time, tags=tags, run_name=run_name)
        except Exception as e:
            if attempt == tries - 1 or not any(word in str(e) for word in _LOST_ANSWER):
                raise
            time.sleep(0.5 * 2 ** attempt)
            made = _made_run(client, experiment_id, run_name, start_time)
            if made is not None:
                return made
    raise AssertionError("unreachable")  # the loop returns or raises


def _made_run(client, experiment_id: str, run_name: str, start_time: int):
    """The run of `experiment_id` named `run_name` that started at `start_time` (ms), or None. A lookup is safe to
    send again, so MLflow retries it while the server restarts; one that still fails raises, and the create is not
    sent again: a second run beside one the server may have made would be left RUNNING."""
    quoted = run_name.replace("'", "\\'")
    match = f"attributes.run_name = '{quoted}' and attributes.start_time = {start_time}"
    found = client.search_runs([experiment_id], filter_string=match, max_results=1)
    return found[0] if found else None


class answering:
    """Context manager: an error of a call to a tracking server that stopped answering (after MLflow's
    bounded retries) becomes a one-line `TrackingUnavailable` naming the server (password masked)."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or not is_remote(self.tracking_uri) or not isinstance(exc, Exception) or not _unreachable(exc):
            return False
        from .urls import first_line, mask

        retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "?")
        raise TrackingUnavailable(
            f"MLflow tracking server {mask(self.tracking_uri)} did not answer ({retries} retries with backoff): "
            f"{first_line(exc, self.tracking_uri)[:300]}") from None


def remember_uri(tracking_uri: str) -> str:
    """Note the real URI behind its masked form (the one the study records); returns the real URI."""
    from .urls import mask

    masked = mask(tracking_uri)
    if masked != tracking_uri:
        _REAL_URIS[masked] = tracking_uri
    return _REAL_URIS.get(tracking_uri, tracking_uri)


def str_values(values: Mapping[str, Any] | None) -> dict[str, str]:
    """Tag/param values as strings (the REST store rejects ints, bools and None)."""
    return {str(k): str(v) for k, v in (values or {}).items()}


def get_or_create_experiment(client, name: str, artifact_location: str | None) -> str:
    """Id of the MLflow experiment `name`, created (race-safely) if missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # another worker created it between our look-up and create
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _now_ms() -> int:
    return int(time.time() * 1000)


def _metrics(values: Mapping[str, float], step: int = 0, timestamp: int | None = None) -> list:
    from mlflow.entities import Metric

    ts = timestamp or _now_ms()
    return [Metric(k, float(v), ts, int(step)) for k, v in values.items()]


def repeat_metric(name: str, repeat: int) -> str:
    """MLflow key of one repeat's series of a metric: `repeat0/val_loss`, so that in the UI's
    alphabetical lists and charts the mean curves (`val_loss`) come before the per-repeat ones."""
    return f"repeat{repeat}/{name}"


def repeat_metric_history(client, run_id: str, name: str, repeat: int) -> list:
    """One repeat's logged series of a metric (runs logged before the rename: `val_loss/r0`)."""
    return (client.get_metric_history(run_id, repeat_metric(name, repeat))
            or client.get_metric_history(run_id, f"{name}/r{repeat}"))


def rounded(value: Any, digits: int = 4) -> Any:
    """A float param as the UI should show it (4 significant digits; the exact value stays in Optuna)."""
    if isinstance(value, float) and not isinstance(value, bool):
        return float(f"{value:.{digits}g}")
    return value


def _params(values: Mapping[str, Any]) -> list:
    from mlflow.entities import Param

    return [Param(k, v) for k, v in str_values({k: rounded(v) for k, v in values.items()}).items()]


def _tags(values: Mapping[str, Any]) -> list:
    from mlflow.entities import RunTag

    return [RunTag(k, v) for k, v in str_values(values).items()]


class Tracker:
    """A sweep's MLflow bookkeeping: parent run, trial runs, epoch metrics, artifacts."""

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_location: str | None = None):
        self.tracking_uri = tracking_uri
        self.remote = is_remote(tracking_uri)
        self.client = client_for(tracking_uri)
        self.experiment_id = get_or_create_experiment(self.client, experiment_name, artifact_location)
        self.parent_run_id: str | None = None

    # -- parent run ------------------------------------------------------------------------------

    def start_parent(self, run_name: str, tags: Mapping[str, Any], params: Mapping[str, Any],
                     files: Mapping[str, str], resume_run_id: str | None = None) -> str:
        """Create the sweep's parent run, or reopen it when resuming (same run, status RUNNING)."""
        with store_write(), answering(self.tracking_uri):
            return self._start_parent(run_name, tags, params, files, resume_run_id)

    def _start_parent(self, run_name, tags, params, files, resume_run_id) -> str:
        run_id = None
        if resume_run_id:
            try:
                run = self.client.get_run(resume_run_id)
                if run.info.lifecycle_stage == "active":
                    run_id = resume_run_id
                    self.client.update_run(run_id, status=RUNNING)
            except Exception:  # the tracking store was deleted or replaced: start a new parent
                run_id = None
        if run_id is None:
            run_id = create_run(self.client, self.experiment_id, str_values(tags), run_name, self.remote).info.run_id
            self.client.log_batch(run_id, params=_params(params))
        else:
            self.client.log_batch(run_id, tags=_tags(tags))
        for name, text in files.items():
            self.client.log_text(run_id, text, name)
        self.parent_run_id = run_id
        return run_id

    def attach_parent(self, run_id: str) -> None:
        """Join a parent run another process opened; reopen it (RUNNING) if a finished sweep is resumed."""
        self.parent_run_id = run_id
        with store_write(), answering(self.tracking_uri):
            if self.client.get_run(run_id).info.status != RUNNING:
                self.client.update_run(run_id, status=RUNNING)

    def tag_parent(self, tags: Mapping[str, Any]) -> None:
        """Set tags on the parent run (a `--workers` worker records the device and settings it trains with)."""
        if self.parent_run_id:
            with store_write(), answering(self.tracking_uri):
                self.client.log_batch(self.parent_run_id, tags=_tags(tags))

    def run_url(self, run_id: str) -> str:
        """Link to a run in the MLflow UI: the tracking server's, or `make ui`'s for the embedded store."""
        from .urls import LOCAL_UI, mask

        base = mask(self.tracking_uri).rstrip("/") if self.remote else LOCAL_UI
        return f"{base}/#/experiments/{self.experiment_id}/runs/{run_id}"

    def end_parent(self, status: str = FINISHED) -> None:
        if self.parent_run_id:
            with store_write():
                self.client.set_terminated(self.parent_run_id, status)

    # -- trial runs ------------------------------------------------------------------------------

    def start_trial(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any]) -> str:
        """Nested run for one trial, with its flat params and seeds."""
        all_tags = {"mlflow.parentRunId": self.parent_run_id, **tags} if self.parent_run_id else dict(tags)
        with store_write(), answering(self.tracking_uri):
            run = create_run(self.client, self.experiment_id, str_values(all_tags), run_name, self.remote)
            run_id = run.info.run_id
            # `best_val_loss` first (NaN until the trial ends, then its value at a later timestamp): MLflow's
            # compare page plots the runs' first shared metric, in the order each key was first logged, so
            # its parallel-coordinates plot opens on the answer instead of `repeat0/accuracy`.
            self.client.log_batch(run_id, metrics=_metrics({"best_val_loss": float("nan")}, timestamp=1),
                                  params=_params(params))
        return run_id

    def epoch_logger(self, run_id: str, repeat: int, since: float | None = None):
        """Keras callback logging each epoch's metrics as `repeat<r>/<keras name>` (step=epoch).

        Buffered: a short trial's epochs go to the store in one `log_batch` when training ends
        (stopped, pruned or diverged alike), not one SQLite write per epoch. Once the trial has run
        `LIVE_AFTER` seconds (`since`: its start, `time.perf_counter()`; default this repeat's), the epochs
        so far are written at once and then every `LIVE_EVERY` seconds, so the UI draws a long trial's
        curves while it trains.
        """
        import keras

        client, uri = self.client, self.tracking_uri

        class EpochLogger(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.buffer: list = []
                self.since = since
                self.written: float | None = None  # when the buffer was last written live

            def on_train_begin(self, logs=None):
                if self.since is None:
                    self.since = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                values = {repeat_metric(k, repeat): v for k, v in (logs or {}).items() if _is_number(v)}
                self.buffer += _metrics(values, step=epoch)
                now = time.perf_counter()
                live = self.since is not None and now - self.since >= LIVE_AFTER
                if live and (self.written is None or now - self.written >= LIVE_EVERY):
                    self.write()
                    self.written = now

            def on_train_end(self, logs=None):
                self.write()

            def write(self):
                # Synchronous on purpose: MLflow's async mode costs ~0.6 s per run when its queue is
                # shut down at set_terminated (bench/overhead.py); one batched write is a few ms.
                with store_write(), answering(uri):
                    for i in range(0, len(self.buffer), 1000):  # MLflow's log_batch limit
                        client.log_batch(run_id, metrics=self.buffer[i:i + 1000])
                self.buffer = []

        return EpochLogger()

    def finish_trial(self, run_id: str, status: str, history: pd.DataFrame | None,
                     metrics: Mapping[str, float] | None = None, tags: Mapping[str, Any] | None = None,
                     artifacts: Sequence[str | Path] = (), texts: Mapping[str, str] | None = None) -> None:
        """Log the mean-over-repeats curves under Keras's names, summary metrics, artifacts; end the run."""
        with store_write(), answering(self.tracking_uri):
            self._finish_trial(run_id, status, history, metrics, tags, artifacts, texts)

    def _finish_trial(self, run_id, status, history, metrics, tags, artifacts, texts) -> None:
        batch = []
        if history is not None and len(history):
            mean = history.drop(columns=["repeat"], errors="ignore").groupby("epoch").mean()
            ts = _now_ms()
            for epoch, row in mean.iterrows():
                batch += _metrics({k: v for k, v in row.items() if _is_number(v)}, step=int(epoch), timestamp=ts)
        batch += _metrics({k: v for k, v in (metrics or {}).items() if _is_number(v)})
        for i in range(0, len(batch), 1000):  # MLflow's log_batch limit is 1000 metrics
            self.client.log_batch(run_id, metrics=batch[i:i + 1000])
        if tags:
            self.client.log_batch(run_id, tags=_tags(tags))
        for name, text in (texts or {}).items():
            self.client.log_text(run_id, text, name)
        for local in artifacts:
            self.client.log_artifact(run_id, str(local))
        self.client.set_terminated(run_id, status)


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def scratch_dir():
    """Temporary folder for artifacts before they are copied into the store."""
    return tempfile.TemporaryDirectory(prefix="augsweep-")


def check_artifacts_inside(client, run_ids: Sequence[str | None], artifact_root: str | None,
                           mlruns: str | Path) -> list[str]:
    """Refuse to write into runs (the report's uploads, the registered model) whose artifact folder lies outside
    the stores: the embedded store's artifact folder (`artifact_root`), else the run's experiment's artifact
    location when that is a local folder. A store edited by hand, or by someone else, must not send files
    anywhere on this machine. One exception, with a note (returned): a copy of an embedded store whose runs
    still name the store it was copied from (MLflow keeps absolute paths), which must itself be a store
    (`mlflow.db` beside `artifacts/`) holding that run's folder."""
    from ..experiment.schema import ConfigError
    from .run_files import local_folder

    notes = []
    for run_id in filter(None, run_ids):
        try:
            run = client.get_run(run_id)
        except Exception:  # noqa: BLE001 - no such run: nothing will be written into it
            continue
        uri = run.info.artifact_uri or ""
        root = artifact_root
        if root is None:
            experiment = client.get_experiment(run.info.experiment_id)
            root = experiment.artifact_location if local_folder(experiment.artifact_location) else None
        folder, base = local_folder(uri), local_folder(root) if root else None
        if base is None and folder is None:
            continue  # a tracking server's own artifact store (mlflow-artifacts:, a bucket): the server decides
        if folder is not None and base is not None and _within(folder, base):
            continue
        if artifact_root is not None and folder is not None and _copied_store(folder, run_id):
            notes.append(f"these stores are a copy of {folder.parents[2]}: their runs still name it (MLflow keeps "
                         f"absolute paths), so the report's uploads and the registered model go there")
            continue
        moved = folder is not None and folder.parts[-2:] == (run_id, "artifacts")
        raise ConfigError(
            f"run {run_id} keeps its artifacts at {runtime.one_line(uri, 300)!r}, outside the stores' artifact folder "
            f"({base or root}); the report writes only under --out and into the stores it was given"
            + ("; MLflow keeps absolute paths, so stores moved from there must be moved back" if moved else "")
            + f". Received: --mlruns {mlruns}")
    return notes


def _within(folder: Path, base: Path) -> bool:
    folder, base = folder.resolve(), base.resolve()
    return folder == base or base in folder.parents


def _copied_store(folder: Path, run_id: str) -> bool:
    """`folder` is `<store>/artifacts/<run_id>/artifacts` of an existing embedded store (`<store>/mlflow.db`)."""
    parts = folder.resolve().parts
    return (len(parts) > 4 and parts[-1] == "artifacts" and parts[-2] == run_id and parts[-3] == "artifacts"
            and folder.is_dir() and (folder.resolve().parents[2] / "mlflow.db").is_file())
