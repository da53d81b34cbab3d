"""Crash recovery for a study shared by several processes: dead trials and stale runs (whether a worker is
alive is `liveness`; the locks that serialize the workers are in `locks`; the keys read and written are
`records`').

A trial is dead when the process that ran it is gone. On this machine that is known exactly
(the trial records its host, pid and process start time); for a worker on another machine
Optuna's heartbeat decides (no beat for `grace` seconds). A dead trial is failed in Optuna, its
MLflow run is closed as KILLED with the reason, and its configuration is queued once more
(Optuna's `WAITING` state, the same mechanism as `RetryHeartbeatStaleTrialCallback`).
"""

from __future__ import annotations

import datetime
from typing import Callable

from . import records as rec
from .liveness import HOST, heartbeat_settings, process_alive

# ----------------------------------------------------------------------------- dead trials


def retry_once(study, trial, fresh_seeds: bool = False) -> int | None:
    """Queue a failed trial's configuration again, unless it already is a retry; the new number.

    `fresh_seeds`: the retry trains on new seeds (`seed_attempt` one higher), for a failure the seeds may
    have caused; a trial killed from outside retries on its own seeds."""
    import optuna

    if rec.is_retry(trial):
        return None  # a retry that failed too: the configuration has had its second chance
    user_attrs, system_attrs = rec.retry_attrs(trial, fresh_seeds)
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs=user_attrs, system_attrs=system_attrs,
    ))
    return study.get_trials(deepcopy=False)[-1].number


def close_trial_run(study, trial, reason: str, status: str = "KILLED") -> str | None:
    """End the MLflow run of a dead or interrupted trial with the reason: a RUNNING run, or one already written
    FINISHED (tag `state=COMPLETE`) whose process died before Optuna recorded the trial, so that MLflow never
    counts as COMPLETE a trial the study failed."""
    run_id = trial.user_attrs.get(rec.MLFLOW_RUN_ID)
    uri = study.user_attrs.get(rec.ATTR_TRACKING_URI)
    if not run_id or not uri:
        return None
    from .tracking import RUNNING, client_for

    client = client_for(uri)
    try:
        run = client.get_run(run_id)
    except Exception:  # the tracking store was replaced: nothing to close
        return None
    if run.info.status == RUNNING:
        _mark_failed(client, run_id, reason, status)
        return run_id
    if run.data.tags.get(rec.TAG_STATE) in WRITTEN_AHEAD:
        _mark_failed(client, run_id, f"{reason}; {_WRITTEN_AHEAD_WHY}", status)
        return run_id
    return None


# A trial run is written (FINISHED, state=COMPLETE; KILLED, state=PRUNED) before Optuna is told; a process that
# dies in between leaves a run that claims an outcome the study never recorded (the resume fails the trial).
WRITTEN_AHEAD = ("COMPLETE", "PRUNED")
_WRITTEN_AHEAD_WHY = "its run was written before the study recorded the trial, which it then failed"


def _mark_failed(client, run_id: str, reason: str, status: str) -> None:
    client.log_batch(run_id, tags=_tags({rec.TAG_STATE: "FAIL", rec.TAG_FAILURE_REASON: reason}))
    client.set_terminated(run_id, status)


def _tags(values: dict):
    from mlflow.entities import RunTag

    return [RunTag(k, str(v)[:5000]) for k, v in values.items()]


def fail_dead_trial(study, trial, reason: str, echo: Callable[[str], None]) -> bool:
    """Fail a RUNNING trial whose process is gone, close its run, queue its retry. False if
    another process got there first."""
    import optuna

    try:
        # Optuna has no public call to change another process's trial; its own fail_stale_trials uses these.
        study._storage.set_trial_user_attr(trial._trial_id, rec.FAILURE_REASON, reason)
        if not study._storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL):
            return False
    except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
        return False
    frozen = study._storage.get_trial(trial._trial_id)
    _after_failure(study, frozen, reason, echo)
    return True


def _after_failure(study, frozen, reason: str, echo) -> None:
    close_trial_run(study, frozen, reason)
    again = retry_once(study, frozen)
    retry = f"; configuration queued again as t{again:02d}" if again is not None else "; not retried again"
    echo(f"t{frozen.number:02d} FAIL ({reason}{retry})")


def on_stale_heartbeat(study, frozen) -> None:
    """Optuna's heartbeat-stale callback: close the run, retry the configuration once."""
    _after_failure(study, frozen, "worker stopped sending heartbeats (killed or lost)", print)


def reap_dead_trials(study, echo: Callable[[str], None], no_local_workers: bool = False,
                     running: list | None = None) -> int:
    """Fail RUNNING trials whose worker is gone (this machine: by pid; elsewhere: heartbeat).
    `running`: the study's RUNNING trials when the caller has just read them (one read fewer)."""
    import warnings

    import optuna

    n = 0
    _, grace = heartbeat_settings()
    now = datetime.datetime.now()
    if running is None:
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if not running:
        return 0  # nothing running: nothing can be dead or stale
    remote = []
    for t in running:
        w = t.user_attrs.get(rec.WORKER)
        if not w:  # killed between Optuna's ask and our first write: no heartbeat may exist either
            if t.datetime_start and (now - t.datetime_start).total_seconds() > grace:
                n += fail_dead_trial(study, t, "worker gone before the trial recorded its process", echo)
            continue
        if w.get("host") != HOST:
            remote.append(t._trial_id)
            continue
        if no_local_workers or not process_alive(int(w["pid"]), w.get("start")):
            reason = f"worker process {w['pid']} on {w['host']} is gone (killed or crashed)"
            n += fail_dead_trial(study, t, reason, echo)
    if not remote:
        return n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # other machines: heartbeat (calls on_stale_heartbeat)
    return n + sum(study._storage.get_trial(i).state == optuna.trial.TrialState.FAIL for i in remote)


def close_orphan_runs(study, echo: Callable[[str], None]) -> int:
    """Make this study's MLflow trial runs agree with its Optuna trials: close RUNNING runs whose trial is not
    running any more, and fail runs written COMPLETE or PRUNED whose trial the study failed (a process killed
    between the two writes, or between failing the trial and closing its run). The number of runs changed."""
    import optuna

    stored = rec.StudyRecord.from_study(study)
    if not stored.tracking_uri:
        return 0
    from .tracking import KILLED, RUNNING, client_for

    client = client_for(stored.tracking_uri)
    exp = client.get_experiment_by_name(stored.experiment_name(study.study_name))
    if exp is None:
        return 0
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    runs = client.search_runs([exp.experiment_id], f"attributes.status = '{RUNNING}'", max_results=5000)
    n = 0
    for run in runs:
        tags = run.data.tags
        trial = _trial_of(run, study.study_name, trials, own_run=False)
        if trial is None or trial.state == optuna.trial.TrialState.RUNNING:
            continue
        _mark_failed(client, run.info.run_id, f"orphaned: Optuna trial {tags[rec.TAG_TRIAL]} is {trial.state.name}",
                     KILLED)
        echo(f"closed MLflow run {run.info.run_id} ({run.info.run_name}) as KILLED: its trial is {trial.state.name}")
        n += 1
    for state in WRITTEN_AHEAD:
        ahead = client.search_runs([exp.experiment_id], f"tags.{rec.TAG_STATE} = '{state}'", max_results=50000)
        for run in ahead:
            trial = _trial_of(run, study.study_name, trials)
            if trial is None or trial.state != optuna.trial.TrialState.FAIL:
                continue
            why = trial.user_attrs.get(rec.FAILURE_REASON) or "the study failed the trial"
            _mark_failed(client, run.info.run_id, f"{why}; {_WRITTEN_AHEAD_WHY}", KILLED)
            echo(f"marked MLflow run {run.info.run_id} ({run.info.run_name}) KILLED: it was written {state} but "
                 f"Optuna failed t{trial.number:02d}")
            n += 1
    return n


def _trial_of(run, study_name: str, trials: dict, own_run: bool = True):
    """The Optuna trial a trial run of this study belongs to (None: another study's run, or not a trial's;
    `own_run`: also None when the trial names another run as its own)."""
    tags = run.data.tags
    if tags.get(rec.TAG_KIND) != rec.KIND_TRIAL or tags.get(rec.TAG_STUDY) != study_name:
        return None
    try:
        trial = trials.get(int(tags.get(rec.TAG_TRIAL, "")))
    except ValueError:
        return None
    if trial is None:
        return None
    own = trial.user_attrs.get(rec.MLFLOW_RUN_ID)
    return trial if not own_run or own is None or own == run.info.run_id else None
