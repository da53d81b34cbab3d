"""A COMPLETE trial's MLflow run holds its data, and the two stores agree after any kill. The kill points (SIGKILL
at every store call of the trial's end-of-trial MLflow write, and after the last one, before Optuna is told) are
defined here and run, each followed by a resume, in the fault campaign (`tests/test_fault_campaign.py`), which
checks that no COMPLETE trial lacks its curves or artifacts and that MLflow, and the MLflow UI's trials view the
printed links open, count exactly the trials Optuna counts as COMPLETE. The campaign's "resume killed while
reaping" fault resumes the stores the "after" kill left, kills that resume between failing the dead trial and
closing its run (`_KILL_REAPING`), and checks that the dead trial is FAIL in Optuna while its run still says
COMPLETE, that the next resume finishes the budget with the stores agreeing, and that it says what it reconciled
("written COMPLETE but Optuna failed tNN"). The kill is injected by wrapping the real MLflow client (or the
recovery step) of the process, so each point is hit on purpose, not by timing."""

from __future__ import annotations

# Kill points: before each store call of one successful trial's finish (metrics batch, tags batch, history.csv,
# learning_curves.png, then the preview when there are augmentations), before its last call (set_terminated,
# "last"), and after every write but before Optuna is told ("after").
POINTS = ["0", "1", "2", "3", "4", "last", "after"]

# The resume after an "after" kill, itself killed once it has failed the dead trial in Optuna but before it
# closes the trial's run (the next resume must reconcile the two stores from what it finds).
_KILL_REAPING = r"""
import os, signal, sys
from augsweep.stores import recovery

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

recovery.close_trial_run = killed
from augsweep.cli import sweep_main
sys.exit(sweep_main([sys.argv[1], "--mlruns", sys.argv[2]]))
"""


def assert_stores_agree(view, context) -> None:
    """Optuna's COMPLETE trials are exactly MLflow's trial runs FINISHED with `state=COMPLETE`; a failed
    trial's run is neither FINISHED nor COMPLETE, and says why."""
    trial_runs = [r for r in view.runs if r.data.tags.get("kind") == "trial"]
    by_id = {r.info.run_id: r for r in trial_runs}
    complete = {t.user_attrs["mlflow_run_id"] for t in view.trials if t.state.name == "COMPLETE"}
    finished = {r.info.run_id for r in trial_runs if r.info.status == "FINISHED"}
    tagged = {r.info.run_id for r in trial_runs if r.data.tags.get("state") == "COMPLETE"}
    assert complete == finished == tagged, (context, len(complete), len(finished), len(tagged))
    for t in view.trials:
        run = by_id.get(t.user_attrs.get("mlflow_run_id"))
        if t.state.name == "FAIL" and run is not None:
            assert run.info.status in ("KILLED", "FAILED"), (context, t.number, run.info.status)
            assert run.data.tags.get("state") == "FAIL" and run.data.tags.get("failure_reason"), context
    assert not [r for r in trial_runs if r.info.status == "RUNNING"], context
    assert_ui_agrees(view, complete, context)


def assert_ui_agrees(view, complete: set[str], context) -> None:
    """The MLflow UI's trials view (the saved view the printed links open: its search filter, run by the same
    search the UI makes) shows exactly Optuna's COMPLETE trials as finished runs, and the compare and curves
    links name only those."""
    import json

    from augsweep.serve import mlflow_ui

    experiment_id = view.runs[0].info.experiment_id
    links = mlflow_ui.study_links(view.client, experiment_id)  # saves the view, as the sweep's summary does
    saved = json.loads(view.client.get_experiment(experiment_id).tags[mlflow_ui.VIEW_TAG])
    shown = view.client.search_runs([experiment_id], saved["searchFilter"], max_results=1000)
    finished = {r.info.run_id for r in shown if r.info.status == "FINISHED"}
    assert finished == complete, (context, len(finished), len(complete))
    names = {r.info.run_name for r in shown if r.info.run_id in complete}
    assert set(links.top) <= names, (context, links.top)

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
