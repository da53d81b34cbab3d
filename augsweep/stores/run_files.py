"""One artifact file (`history.csv`, `versions.yaml`, …) of many MLflow runs, read in bulk.

MLflow's per-run download (`download_artifacts(run_id=…)`) looks the run up and builds an artifact
repository every time: ~23 ms a run on the embedded store, 23 s for a 1,000-trial report. Here the
runs' artifact URIs come from their experiment's artifact location (or from runs already fetched),
a file under a local artifact folder (the embedded store's `file://` URIs) is read where it lies,
and any other URI (a tracking server's `mlflow-artifacts:`, a bucket) is downloaded through MLflow,
on a few threads.
A file not found where its URI says falls back to MLflow's per-run download, so the result never
depends on which path served it: the same bytes reach the same reader.
"""

from __future__ import annotations

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


def local_folder(artifact_uri: str | None) -> Path | None:
    """The folder of a local artifact URI (`file:///…` or a plain path), None for anything remote."""
    if not artifact_uri:
        return None
    from mlflow.utils.file_utils import get_local_path_or_none

    local = get_local_path_or_none(artifact_uri)
    return Path(local) if local else None


def read_run_files(tracking_uri: str, runs: Mapping[str, str | None], path: str, read: Callable[[Path], T],
                   direct: bool = True) -> dict[str, T]:
    """`read(local file)` of the artifact `path` of each run (run id -> its artifact URI, None if unknown),
    for the runs that have it. Local artifact folders are read in place (`direct`; False sends them through
    MLflow's download like remote ones, which tests use to compare both paths); a file not found at its URI
    is looked for once more through MLflow's per-run look-up."""
    out: dict[str, T] = {}
    fetch: list[tuple[str, str | None]] = []
    for run_id, uri in runs.items():
        folder = local_folder(uri) if direct else None
        if folder is not None and (folder / path).is_file():
            out[run_id] = read(folder / path)
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
            if ok:
                out[run_id] = value
    return out
