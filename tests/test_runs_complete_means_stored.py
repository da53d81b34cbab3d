"""A COMPLETE trial's MLflow run holds its data (issue 22, item 3): a real `sweep.py` is killed with SIGKILL
at every store call of the trial's end-of-trial MLflow write in turn (and after the last one, before Optuna
is told), then resumed; no COMPLETE trial may ever lack its curves or artifacts. The kill is injected by
wrapping the real MLflow client of the process, so each point is hit on purpose, not by timing."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.helpers import ROOT, read_stores, sweep, tiny_experiment

# Kill points: before each store call of one successful trial's finish (metrics batch, tags batch, history.csv,
# learning_curves.png, then the preview when there are augmentations), before its last call (set_terminated,
# "last"), and after every write but before Optuna is told ("after").
POINTS = ["0", "1", "2", "3", "4", "last", "after"]

_KILL_AT = r"""
import os, signal, sys
from augsweep.stores import tracking

point, calls = sys.argv[3], [0]
real = tracking.Tracker._finish_trial

def killed_at_call(self, run_id, status, *rest):
    client = self.client

    class Killing:
        def __getattr__(_, name):
            method = getattr(client, name)

            def call(*args, **kwargs):
                if status == "FINISHED" and (point == str(calls[0]) or point == "last" and name == "set_terminated"):
                    os.kill(os.getpid(), signal.SIGKILL)
                calls[0] += 1
                return method(*args, **kwargs)
            return call

    self.client = Killing()
    try:
        real(self, run_id, status, *rest)
    finally:
        self.client = client
    if status == "FINISHED" and point == "after":  # every write done, Optuna not told yet
        os.kill(os.getpid(), signal.SIGKILL)

tracking.Tracker._finish_trial = killed_at_call
from augsweep.cli import sweep_main
sys.exit(sweep_main([sys.argv[1], "--mlruns", sys.argv[2]]))
"""


@pytest.mark.slow
def test_a_kill_anywhere_in_the_end_of_trial_write_never_leaves_a_complete_trial_without_data(tmp_path,
                                                                                             write_experiment):
    path = write_experiment(tiny_experiment(name="stored", trials=1, train={"epochs": 1},
                                            dataset={"image_size": [8, 8], "samples": 48}))
    for k in POINTS:
        mlruns = tmp_path / f"m{k}"
        killed = subprocess.run([sys.executable, "-c", _KILL_AT, str(path), str(mlruns), str(k)], cwd=ROOT,
                                capture_output=True, text=True, timeout=300)
        assert killed.returncode == -signal.SIGKILL, (k, killed.stderr[-3000:])
        sweep(path, mlruns)  # the resume
        view = read_stores(path, mlruns)
        by_id = {r.info.run_id: r for r in view.runs}
        complete = [t for t in view.trials if t.state.name == "COMPLETE"]
        assert len(complete) == 1, (k, [t.state.name for t in view.trials])
        for t in complete:
            run = by_id[t.user_attrs["mlflow_run_id"]]
            assert run.info.status == "FINISHED", (k, run.info.status, run.data.tags.get("failure_reason"))
            assert len(view.client.get_metric_history(run.info.run_id, "val_loss")) == 1, k
            files = {f.path for f in view.client.list_artifacts(run.info.run_id)}
            assert {"history.csv", "learning_curves.png"} <= files, (k, files)
