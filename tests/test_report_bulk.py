"""The report reads its curves in bulk (`stores.run_files`): the same frames and the same report bytes as
the test's own per-run downloads through `MlflowClient`, on the embedded store and through a real
`mlflow server`."""

from __future__ import annotations

import re

import mlflow
import numpy as np
import pandas as pd
import pytest

from augsweep.experiment import load_experiment
from augsweep.report import sweep_load
from augsweep.report.sweep_load import load_curves, trials_by_number
from augsweep.stores.run_files import artifact_uris, read_run_files
from augsweep.stores.study import load_study
from augsweep.stores.tracking import client_for
from tests.helpers import report, run_in_process, stores
from tests.synthetic import build_study

OUTPUTS = ("report.md", "report.html", "effects.csv", "effects_forest.png", "curves_by_augmentation.png",
           "train_vs_val.png", "optimization_history.png")
PRUNED = (3,)  # pruned before its first epoch: a run without history.csv


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    path = build_study(folder, "synthetic", trials=20, repeats=2, epochs=5, pruned_at_start=PRUNED)
    return path, folder / "mlruns"


def downloaded_histories(tracking_uri: str, run_ids: list[str], dst) -> dict[str, pd.DataFrame]:
    """Each run's `history.csv`, downloaded one run at a time by MLflow's own client (none of augsweep's
    readers); a run without the file (pruned before its first epoch) is left out."""
    client = mlflow.MlflowClient(tracking_uri)
    out = {}
    for run_id in run_ids:
        if "history.csv" not in {a.path for a in client.list_artifacts(run_id)}:
            continue
        folder = dst / run_id
        folder.mkdir(parents=True, exist_ok=True)
        out[run_id] = pd.read_csv(client.download_artifacts(run_id, "history.csv", str(folder)))
    return out


def per_trial_frame(histories: dict, trials: pd.DataFrame, augmentations: list[str]) -> pd.DataFrame:
    """The curves frame built the plain way: each finished or pruned trial's history with its factors assigned
    (`trial`, `depth`, `aug_<name>`: a logged switch, else False), one concat."""
    frames = []
    for _, t in trials[trials["state"].isin(["COMPLETE", "PRUNED"])].iterrows():
        if t["mlflow_run_id"] not in histories:
            continue
        h = histories[t["mlflow_run_id"]].assign(trial=t["trial"], depth=t.get("depth"))
        for a in augmentations:
            on = t.get(f"aug_{a}", False)
            h[f"aug_{a}"] = bool(on) if isinstance(on, (bool, np.bool_)) else False
        frames.append(h)
    return pd.concat(frames, ignore_index=True)


def test_bulk_curves_are_the_per_run_downloads(synthetic, tmp_path):
    path, mlruns = synthetic
    exp = load_experiment(path)
    s = stores(exp, mlruns)
    trials = trials_by_number(load_study(s))
    client = client_for(s.tracking_uri)
    augs = exp.search_space.augmentation_names
    ids = [r for r in trials["mlflow_run_id"] if isinstance(r, str)]
    expected = downloaded_histories(s.tracking_uri, ids, tmp_path)
    assert set(expected) == set(ids) - {trials.loc[n, "mlflow_run_id"] for n in PRUNED}
    curves = load_curves(client, s.tracking_uri, exp.name, trials, augs)
    pd.testing.assert_frame_equal(curves, per_trial_frame(expected, trials, augs), check_exact=True)
    assert sorted(curves["trial"].unique()) == [n for n in range(20) if n not in PRUNED]

    uris = artifact_uris(client, exp.name, ids)
    assert_layout_hint_is_mlflows(s.tracking_uri, exp.name, "file://")  # the embedded store: read in place
    in_place = read_run_files(s.tracking_uri, uris, "history.csv", pd.read_csv)
    downloaded = read_run_files(s.tracking_uri, uris, "history.csv", pd.read_csv, direct=False)
    assert set(in_place) == set(downloaded) == set(expected)
    for run_id, frame in expected.items():
        pd.testing.assert_frame_equal(in_place[run_id], frame, check_exact=True)
        pd.testing.assert_frame_equal(downloaded[run_id], frame, check_exact=True)


def assert_layout_hint_is_mlflows(tracking_uri: str, name: str, scheme: str) -> None:
    """`artifact_uris` (no search) names the folder MLflow recorded for every run of the experiment."""
    client = client_for(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=1000)
    uris = artifact_uris(client, name, [r.info.run_id for r in runs])
    assert runs and {r.info.run_id: r.info.artifact_uri for r in runs} == uris
    assert all(u.startswith(scheme) for u in uris.values())


def test_report_bytes_are_the_same_read_in_bulk_or_run_by_run(synthetic, tmp_path, monkeypatch):
    path, mlruns = synthetic
    report(path, mlruns, tmp_path / "bulk")

    def curves_downloaded_here(client, tracking_uri, experiment_name, trials, augmentations):
        ids = [r for r in trials["mlflow_run_id"] if isinstance(r, str) and r]
        histories = downloaded_histories(tracking_uri, ids, tmp_path / "downloads")
        return per_trial_frame(histories, trials, augmentations)

    monkeypatch.setattr(sweep_load, "load_curves", curves_downloaded_here)
    report(path, mlruns, tmp_path / "per-run")
    for name in OUTPUTS:
        assert (tmp_path / "bulk" / name).read_bytes() == (tmp_path / "per-run" / name).read_bytes(), name


def test_report_through_a_tracking_server_is_the_embedded_report(servers, tmp_path):
    # The same synthetic study twice, in the same folder (the report quotes the experiment file's path):
    # embedded stores, and PostgreSQL + `mlflow server` with proxied artifacts (`mlflow-artifacts:` URIs,
    # downloaded on threads; the pruned trial's missing file falls back to MLflow's per-run look-up).
    storage = servers.database()
    path = build_study(tmp_path, "served", trials=20, repeats=2, epochs=5, storage=storage,
                       tracking_uri=servers.tracking_uri, pruned_at_start=PRUNED)
    assert build_study(tmp_path, "served", trials=20, repeats=2, epochs=5, pruned_at_start=PRUNED) == path
    assert_layout_hint_is_mlflows(servers.tracking_uri, "served", "mlflow-artifacts:")
    mlruns = tmp_path / "mlruns"
    # Both reports through report.py's entry function, in this process: the claim is the same report, not the
    # process (report.py's exit codes in a real process are test_cli_messages' and test_report_sweep's).
    served = run_in_process("report.py", path, "--mlruns", mlruns, "--storage", storage, "--tracking-uri",
                            servers.tracking_uri, "--out", tmp_path / "served-report")
    assert served.returncode == 0, served.stderr[-3000:]
    local = run_in_process("report.py", path, "--mlruns", mlruns, "--out", tmp_path / "local-report")
    assert local.returncode == 0, local.stderr[-3000:]
    # The printed commands differ by design (each names the stores it was made from: `make report … MLRUNS=` for
    # the embedded ones, the venv's python with --storage/--tracking-uri for the servers); the rest is the same.
    command = re.compile(r"make (report|sweep|ablate) |\.venv/bin/python |rerun_|--storage |--tracking-uri ")
    for name in OUTPUTS:
        served_bytes = (tmp_path / "served-report" / name).read_bytes()
        local_bytes = (tmp_path / "local-report" / name).read_bytes()
        if name.endswith((".md", ".html")):
            served, local = ([ln for ln in b.decode().splitlines() if not command.search(ln)]
                             for b in (served_bytes, local_bytes))
            assert served == local, name
        else:
            assert served_bytes == local_bytes, name
    assert servers.tracking_uri in (tmp_path / "served-report" / "report.md").read_text()
    assert "pruned trial(s)" in (tmp_path / "served-report" / "report.md").read_text()
