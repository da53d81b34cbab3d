"""Crash recovery for a study shared by several processes: dead workers, stale runs (the locks that
serialize the workers are in `locks`).

A trial is dead when the process that ran it is gone. On this machine that is known exactly
(the trial records its host, pid and process start time); for a worker on another machine
Optuna's heartbeat decides (no beat for `grace` seconds). A dead trial is failed in Optuna, its
MLflow run is closed as KILLED with the reason, and its configuration is queued once more
(Optuna's `WAITING` state, the same mechanism as `RetryHeartbeatStaleTrialCallback`).
"""

from __future__ import annotations

import datetime
import os
import socket
from pathlib import Path
from typing import Callable

# The machine a worker records with its trials. Containers that share a host network (or tests that play
# several machines on one) name themselves with AUGSWEEP_HOST; their dead workers are then found by heartbeat.
HOST = os.environ.get("AUGSWEEP_HOST") or socket.gethostname()
# Optuna heartbeat: a running trial beats every INTERVAL s; after GRACE s without a beat it is stale.
HEARTBEAT_INTERVAL = 10  # seconds
HEARTBEAT_GRACE = 60  # seconds
ENV_INTERVAL = "AUGSWEEP_HEARTBEAT_INTERVAL"
ENV_GRACE = "AUGSWEEP_HEARTBEAT_GRACE"


def heartbeat_settings() -> tuple[int, int]:
    """(interval, grace) in seconds; the environment may shorten them (tests, preemptible nodes)."""
    from ..experiment.schema import ConfigError

    out = []
    for name, default in ((ENV_INTERVAL, HEARTBEAT_INTERVAL), (ENV_GRACE, HEARTBEAT_GRACE)):
        raw = os.environ.get(name, "")
        try:
            value = int(raw) if raw else default
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer (seconds). Received: {name}={raw!r}")
        out.append(value)
    interval, grace = out
    return interval, max(grace, interval + 1)


# ----------------------------------------------------------------------------- process identity


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) from /proc, or None where /proc is unavailable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return fields[0], fields[19]


def worker_identity() -> dict:
    """What a trial records about the process running it."""
    stat = _proc_stat(os.getpid())
    return {"host": HOST, "pid": os.getpid(), "start": stat[1] if stat else None}


def process_alive(pid: int, start: str | None = None) -> bool:
    """Is process `pid` (started at `start`, guarding against pid reuse) alive on this machine?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, started = stat
    if state in ("Z", "X"):  # killed but not yet reaped by its parent
        return False
    return start is None or started == start


# ----------------------------------------------------------------------------- dead trials


def retry_once(study, trial, fresh_seeds: bool = False) -> int | None:
    """Queue a failed trial's configuration again, unless it already is a retry; the new number.

    `fresh_seeds`: the retry trains on new seeds (`seed_attempt` one higher), for a failure the seeds may
    have caused; a trial killed from outside retries on its own seeds."""
    import optuna

    if trial.system_attrs.get("failed_trial") is not None:
        return None  # a retry that failed too: the configuration has had its second chance
    # System attrs carry over (GridSampler's grid_id: the retry is the same grid point), as in
    # Optuna's RetryHeartbeatStaleTrialCallback; user attrs belong to the dead run and do not.
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        # The design's block and point travel with the retry (its seeds and its place in the design).
        user_attrs={"retry_of": trial.number,
                    **{k: trial.user_attrs[k] for k in ("block", "design_point") if k in trial.user_attrs},
                    **({"seed_attempt": int(trial.user_attrs.get("seed_attempt", 0)) + 1} if fresh_seeds else {})},
        system_attrs={**trial.system_attrs, "failed_trial": trial.number, "retry_history": [trial.number]},
    ))
    return study.get_trials(deepcopy=False)[-1].number


def close_trial_run(study, trial, reason: str, status: str = "KILLED") -> str | None:
    """End the MLflow run of a dead or interrupted trial (if still RUNNING) with the reason."""
    run_id = trial.user_attrs.get("mlflow_run_id")
    uri = study.user_attrs.get("mlflow_tracking_uri")
    if not run_id or not uri:
        return None
    from .tracking import RUNNING, client_for

    client = client_for(uri)
    try:
        run = client.get_run(run_id)
    except Exception:  # the tracking store was replaced: nothing to close
        return None
    if run.info.status != RUNNING:
        return None
    client.set_tag(run_id, "state", "FAIL")
    client.set_tag(run_id, "failure_reason", reason)
    client.set_terminated(run_id, status)
    return run_id


def fail_dead_trial(study, trial, reason: str, echo: Callable[[str], None]) -> bool:
    """Fail a RUNNING trial whose process is gone, close its run, queue its retry. False if
    another process got there first."""
    import optuna

    try:
        # Optuna has no public call to change another process's trial; its own fail_stale_trials uses these.
        study._storage.set_trial_user_attr(trial._trial_id, "failure_reason", reason)
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
        w = t.user_attrs.get("worker")
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
    """Close RUNNING MLflow trial runs of this study whose Optuna trial is not running any more."""
    import optuna

    uri = study.user_attrs.get("mlflow_tracking_uri")
    if not uri:
        return 0
    from .tracking import KILLED, client_for

    client = client_for(uri)
    exp = client.get_experiment_by_name(study.user_attrs.get("experiment", {}).get("name", study.study_name))
    if exp is None:
        return 0
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'", max_results=5000)
    n = 0
    for run in runs:
        tags = run.data.tags
        if tags.get("kind") != "trial" or tags.get("study") != study.study_name or "trial" not in tags:
            continue
        state = states.get(int(tags["trial"]))
        if state is None or state == optuna.trial.TrialState.RUNNING:
            continue
        client.set_tag(run.info.run_id, "state", "FAIL")
        client.set_tag(run.info.run_id, "failure_reason", f"orphaned: Optuna trial {tags['trial']} is {state.name}")
        client.set_terminated(run.info.run_id, KILLED)
        echo(f"closed MLflow run {run.info.run_id} ({run.info.run_name}) as KILLED: its trial is {state.name}")
        n += 1
    return n
