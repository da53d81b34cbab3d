"""Sweeps survive parallel workers and dead workers: real processes, real SQLite stores.

Each test starts real processes (TensorFlow import included), so they are few and their trials short.
Ctrl-C, SIGTERM and kill -9 sent to a real `sweep.py` mid-training (exit 130/143/-9, the trial failed in both
stores with its reason and queued again, or left RUNNING until the rerun fails it as its dead worker's and retries
it once with the same parameters, and the resume finishing the budget) are faults of the fault campaign
(`tests/test_fault_campaign.py`), which starts that process once for both sets of checks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from augsweep.runs.workers import gpu_assignments
from augsweep.stores.liveness import process_alive
from tests.helpers import ROOT, read_stores, run_in_process, stores, tiny_experiment, wait_for_study

SPACE = {"depth": {"low": 1, "high": 2}, "augmentations": {"flip": None, "contrast": None}}


def _stores(path, mlruns):
    """(study, trials, MLflow runs of the experiment) read back from the real stores."""
    view = read_stores(path, mlruns)
    return view.study, view.trials, view.runs


def _trial_runs(runs):
    return [r for r in runs if r.data.tags.get("kind") == "trial"]


def _sweep_process(path, mlruns, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, str(ROOT / "sweep.py"), str(path), "--mlruns", str(mlruns), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
def test_workers_and_an_independent_process_share_one_study_within_the_budget(tmp_path, write_experiment):
    """`--workers 2` (a launcher and its two spawned worker processes) and an independent plain sweep on one
    study: exactly `trials` trials, each once, one parent run, no "database is locked". The independent sweep is
    this test's process, through the entry function `sweep.py` calls; it joins once a worker is inside a trial
    (what the study shows), so three processes train on the one SQLite study at once and race for the last
    places of the budget."""
    path = write_experiment(tiny_experiment(name="workers", trials=4, search_space=SPACE, train={"epochs": 3}))
    mlruns = tmp_path / "m"
    launcher = _sweep_process(path, mlruns, "--workers", "2")
    wait_for_study(launcher, stores(path, mlruns).study_db, "SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'")
    here = run_in_process("sweep.py", path, "--mlruns", mlruns)
    outs = [launcher.communicate(timeout=900), (here.stdout, here.stderr)]
    for code, (out, err) in zip((launcher.returncode, here.returncode), outs):
        assert code == 0, (out + err)[-3000:]
        assert "locked" not in (out + err).lower() and "Traceback" not in out + err
    assert "2 workers" in outs[0][0] and "4/4 trials finished" in outs[0][0]
    study, trials, runs = _stores(path, mlruns)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4  # exactly the budget, nothing failed
    run_ids = [t.user_attrs["mlflow_run_id"] for t in trials]
    assert len(set(run_ids)) == 4
    assert sorted(r.info.run_id for r in _trial_runs(runs)) == sorted(run_ids)  # each trial logged once
    assert [r.info.status for r in runs] == ["FINISHED"] * 5  # 4 trials + one shared parent


_DEAD_WORKER = """
import os, signal, sys
from augsweep.experiment import load_experiment
from augsweep.training.data import load_dataset
from augsweep.stores.liveness import worker_identity
from augsweep.runs.sweep import open_study
from augsweep.stores.study import resolve_stores
exp = load_experiment(sys.argv[1])
stores = resolve_stores(exp, sys.argv[2])
stores.mlruns.mkdir(parents=True, exist_ok=True)
study, _, tracker = open_study(exp, stores, load_dataset(exp.dataset, exp.seed), 2, print, env=None)
trial = study.ask()
trial.set_user_attr("worker", worker_identity())
run_id = tracker.start_trial("t00 dead", {"depth": 1}, {"kind": "trial", "trial": trial.number, "study": exp.name})
trial.set_user_attr("mlflow_run_id", run_id)
orphan = tracker.start_trial("t00 orphan", {"depth": 1}, {"kind": "trial", "trial": trial.number, "study": exp.name})
os.kill(os.getpid(), signal.SIGKILL)  # dies mid-trial: Optuna trial, MLflow runs and parent left RUNNING
"""


def test_repair_marks_stale_runs_without_training(tmp_path, write_experiment):
    path = write_experiment(tiny_experiment(name="repair", trials=2, search_space=SPACE))
    mlruns = tmp_path / "m"
    dead = subprocess.run([sys.executable, "-c", _DEAD_WORKER, str(path), str(mlruns)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert dead.returncode == -signal.SIGKILL, dead.stderr[-3000:]
    _, trials, runs = _stores(path, mlruns)
    assert [t.state.name for t in trials] == ["RUNNING"] and {r.info.status for r in runs} == {"RUNNING"}

    result = run_in_process("sweep.py", path, "--mlruns", mlruns, "--repair")  # the dead worker was a real process
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 dead trial(s) failed, 3 MLflow run(s) closed" in result.stdout
    assert "queued again as t01" in result.stdout
    _, trials, runs = _stores(path, mlruns)
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"]
    assert "is gone" in trials[0].user_attrs["failure_reason"]
    assert sorted(r.info.status for r in runs) == ["KILLED"] * 3
    # Nothing trained: no metric but the NaN best_val_loss a trial run logs first (so MLflow's compare page
    # opens on it).
    assert all(set(r.data.metrics) <= {"best_val_loss"} and all(v != v for v in r.data.metrics.values())
               for r in runs), [r.data.metrics for r in runs]


def test_repair_without_a_study_is_bad_input(tmp_path, write_experiment):
    result = run_in_process("sweep.py", write_experiment(tiny_experiment()), "--mlruns", tmp_path / "m", "--repair")
    assert result.returncode == 2 and "nothing to repair" in result.stderr
    assert not (tmp_path / "m").exists()


def test_one_gpu_per_worker():
    assert gpu_assignments(3, []) == [None] * 3
    assert gpu_assignments(2, ["0"]) == [None, None]  # one GPU: shared, environment left alone
    assert gpu_assignments(2, ["0", "1"]) == ["0", "1"]
    assert gpu_assignments(3, ["2", "5"]) == ["2", "5", "2"]


def test_process_liveness():
    from augsweep.stores.liveness import worker_identity

    me = worker_identity()
    assert process_alive(me["pid"], me["start"])
    assert not process_alive(me["pid"], "0")  # same pid, other start time: a reused pid is not us
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_alive(child.pid)


def test_heartbeat_settings_from_environment(monkeypatch):
    from augsweep.experiment import ConfigError
    from augsweep.stores.liveness import HEARTBEAT_GRACE, HEARTBEAT_INTERVAL, heartbeat_settings

    monkeypatch.delenv("AUGSWEEP_HEARTBEAT_INTERVAL", raising=False)
    monkeypatch.delenv("AUGSWEEP_HEARTBEAT_GRACE", raising=False)
    assert heartbeat_settings() == (HEARTBEAT_INTERVAL, HEARTBEAT_GRACE) == (10, 60)
    monkeypatch.setenv("AUGSWEEP_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("AUGSWEEP_HEARTBEAT_GRACE", "3")
    assert heartbeat_settings() == (1, 3)
    monkeypatch.setenv("AUGSWEEP_HEARTBEAT_GRACE", "soon")
    with pytest.raises(ConfigError, match="AUGSWEEP_HEARTBEAT_GRACE must be a positive integer"):
        heartbeat_settings()
