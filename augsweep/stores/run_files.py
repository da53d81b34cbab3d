"""One artifact file (`history.csv`, `versions.yaml`, …) of many MLflow runs, read in bulk.

MLflow's per-run download (`download_artifacts(run_id=…)`) looks the run up and builds an artifact
repository every time: ~23 ms a run on the embedded store, 23 s for a 1,000-trial report. Here the
runs' artifact URIs come from their experiment's artifact location (or from runs already fetched),
a file under a local artifact folder (the embedded store's `file://` URIs) is read where it lies,
and any other URI (a tracking server's `mlflow-artifacts:`, a bucket) is downloaded through MLflow,
on a few threads.
A file not found where its URI says falls back to MLflow's per-run download, so the result never
depends on which path served it: the same bytes reach the same reader.

Embedded stores that moved (MLflow keeps absolute `file://` URIs) are read by their relative layout
(`relocated`): a URI under the old artifact folder, which no longer exists, is read under the folder
the stores are in now. Reading only: nothing is ever created at the old path.
"""

from __future__ import annotations

import contextlib
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Mapping, TypeVar

T = TypeVar("T")
DOWNLOAD_THREADS = 8  # concurrent downloads from a tracking server (each waits on the network)


def artifact_uris(client, experiment_name: str, run_ids: Iterable[str]) -> dict[str, str]:
    """run id -> where MLflow puts the run's artifacts: `<experiment's artifact location>/<run id>/artifacts`
    (how MLflow's stores lay runs out), from one look-up of the experiment; {} when it does not exist.

    A search for the runs would return the same URIs, but it loads every run's metrics, params and tags
    (2 s for 1,000 runs). The layout is only a hint: `read_run_files` asks MLflow about any run whose file
    is not where the hint says."""
    from mlflow.utils.uri import append_to_uri_path

    wanted = [r for r in run_ids if r]
    experiment = client.get_experiment_by_name(experiment_name) if wanted else None
    if experiment is None or not experiment.artifact_location:
        return {}
    return {r: append_to_uri_path(experiment.artifact_location, r, "artifacts") for r in wanted}


_RELOCATION: list[tuple[Path, Path]] = []  # (old artifact folder, where it is now) while `relocated` is active


@contextlib.contextmanager
def relocated(old: Path | None, new: Path | None):
    """While active, `local_folder` maps a URI under `old` (an artifact folder that no longer exists) to the same
    relative path under `new` (the stores' artifact folder now). No-op when `old` is None."""
    if old is None or new is None:
        yield
        return
    _RELOCATION.append((Path(old), Path(new)))
    try:
        yield
    finally:
        _RELOCATION.remove((Path(old), Path(new)))


def local_folder(artifact_uri: str | None) -> Path | None:
    """The folder of a local artifact URI (`file:///…` or a plain path), None for anything remote; under an
    active `relocated`, the same relative path in the stores' folder now when the recorded one is gone."""
    if not artifact_uri:
        return None
    from mlflow.utils.file_utils import get_local_path_or_none

    local = get_local_path_or_none(artifact_uri)
    if not local:
        return None
    path = Path(local)
    for old, new in _RELOCATION:
        if (path == old or old in path.parents) and not path.exists():
            return new / path.relative_to(old)
    return path


def moved_from(client, experiment_name: str, artifact_root: str | None) -> Path | None:
    """The artifact folder an embedded store's experiment names when the store has moved from there: that folder
    no longer exists, and the stores' own (`artifact_root`) does. None otherwise (not moved, or not embedded)."""
    if not artifact_root:
        return None
    try:
        experiment = client.get_experiment_by_name(experiment_name)
    except Exception:  # noqa: BLE001 - no experiment (yet): nothing moved
        return None
    recorded, here = local_folder(experiment.artifact_location if experiment else None), local_folder(artifact_root)
    if recorded is None or here is None or recorded.exists() or not here.is_dir():
        return None
    return recorded if recorded.resolve() != here.resolve() else None


def read_csv(path: Path):
    """A CSV artifact as a DataFrame, or None when its bytes are not a CSV (a damaged `history.csv` reads as a
    missing one: the report goes on without that curve instead of failing on it)."""
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return None


def read_run_files(tracking_uri: str, runs: Mapping[str, str | None], path: str, read: Callable[[Path], T],
                   direct: bool = True) -> dict[str, T]:
    """`read(local file)` of the artifact `path` of each run (run id -> its artifact URI, None if unknown),
    for the runs that have it (a `read` that returns None says the file is unreadable: the run is left out, as
    one without the file). Local artifact folders are read in place (`direct`; False sends them through
    MLflow's download like remote ones, which tests use to compare both paths); a file not found at its URI
    is looked for once more through MLflow's per-run look-up."""
    out: dict[str, T] = {}
    fetch: list[tuple[str, str | None]] = []
    for run_id, uri in runs.items():
        folder = local_folder(uri) if direct else None
        if folder is not None and (folder / path).is_file():
            value = read(folder / path)
            if value is not None:
                out[run_id] = value
        else:
            fetch.append((run_id, None if folder is not None else uri))
    if not fetch:
        return out

    def download(item: tuple[str, str | None]):
        import mlflow

        run_id, uri = item
        with tempfile.TemporaryDirectory(prefix="augsweep-") as tmp:
            local = None
            if uri:
                try:
                    local = mlflow.artifacts.download_artifacts(artifact_uri=f"{uri.rstrip('/')}/{path}",
                                                                dst_path=tmp, tracking_uri=tracking_uri)
                except Exception:  # noqa: BLE001 - not there: ask MLflow where the run keeps its artifacts
                    local = None
            if local is None:
                try:
                    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp,
                                                                tracking_uri=tracking_uri)
                except Exception:  # noqa: BLE001 - a run without the file (pruned before its first epoch)
                    return run_id, None, False
            return run_id, read(Path(local)), True

    with ThreadPoolExecutor(max_workers=min(DOWNLOAD_THREADS, len(fetch)), thread_name_prefix="augsweep-read") as pool:
        for run_id, value, ok in pool.map(download, fetch):
            if ok and value is not None:
                out[run_id] = value
    return out


def repoint_moved_store(stores, echo: Callable[[str], None] = print) -> Path | None:
    """Before a sweep or an ablation writes into embedded stores that moved, point the MLflow experiment's and
    runs' recorded artifact folders at where the stores are now (one SQLite transaction on `mlflow.db`): MLflow
    would otherwise create new runs, and upload into resumed ones, at the old path. Returns the old folder, or
    None when nothing moved. The report never calls this: it reads moved stores through `relocated`."""
    if not stores.embedded_tracking or not stores.artifact_location or not stores.tracking_db.is_file():
        return None
    import sqlite3

    with sqlite3.connect(stores.tracking_db, timeout=120) as db:
        rows = db.execute("select artifact_location from experiments where name = ?", (stores.study_name,)).fetchall()
        if not rows or not rows[0][0]:
            return None
        recorded = rows[0][0]
        old, here = local_folder(recorded), local_folder(stores.artifact_location)
        if old is None or here is None or old.exists() or not here.is_dir() or old.resolve() == here.resolve():
            return None
        new = stores.artifact_location
        db.execute("update experiments set artifact_location = ? where artifact_location = ?", (new, recorded))
        db.execute("update runs set artifact_uri = ? || substr(artifact_uri, ?) where artifact_uri like ? escape '\\'",
                   (new, len(recorded) + 1, _like_prefix(recorded)))
    forget_artifact_repositories()  # one this process opened still names the old path
    echo(f"note: these stores moved from {old.parent}; their runs now name where they are ({here.parent})")
    return old


def forget_artifact_repositories() -> None:
    """Empty MLflow's per-process cache of each run's artifact repository, keyed by run id alone: after the runs'
    recorded folders change (a moved store, a copy of one), a repository opened before would still name the old
    folder."""
    try:
        from mlflow.tracking._tracking_service import utils

        utils._artifact_repos_cache.clear()
    except (ImportError, AttributeError):
        pass


def _like_prefix(text: str) -> str:
    """A LIKE pattern matching `text` followed by a path below it (`%` and `_` in `text` taken literally)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "/%"
