"""A sweep: validated experiment -> Optuna study (resumable, embedded storage) -> MLflow runs."""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from . import runtime, space
from .config import ConfigError, Experiment
from .data import load_dataset

# Study user attributes that tie the Optuna study to the MLflow store and to its experiment.
ATTR_PARENT_RUN = "mlflow_parent_run_id"
ATTR_EXPERIMENT_HASH = "experiment_sha256"
ATTR_TRACKING_URI = "mlflow_tracking_uri"


class SweepAborted(RuntimeError):
    """Too many consecutive failed trials: something is systematically wrong."""


@dataclass(frozen=True)
class Stores:
    """Where the study and the runs live."""

    mlruns: Path
    storage_url: str
    tracking_uri: str
    artifact_location: str | None
    study_name: str


def resolve_stores(exp: Experiment, mlruns: str | Path = "mlruns", storage: str | None = None,
                   tracking_uri: str | None = None, study_name: str | None = None) -> Stores:
    """Embedded defaults under `mlruns` (Optuna SQLite + MLflow SQLite + artifacts), or the URLs given."""
    from .tracking import artifact_root_for, tracking_uri_for

    root = Path(mlruns)
    return Stores(
        mlruns=root,
        storage_url=storage or f"sqlite:///{root.resolve() / 'optuna.db'}",
        tracking_uri=tracking_uri or tracking_uri_for(root),
        artifact_location=None if tracking_uri else artifact_root_for(root),
        study_name=study_name or exp.name,
    )


def make_storage(url: str):
    """Optuna storage for a URL.

    The embedded default is SQLite (one file beside MLflow's, read by the report) with a 120 s
    busy timeout, so parallel workers wait for each other's short writes instead of failing
    with "database is locked", and a heartbeat: a trial of a worker that died on another
    machine is failed after `recovery.HEARTBEAT_GRACE` s and its configuration retried once.
    (Optuna's JournalStorage also takes parallel workers but has no heartbeat.)
    """
    import optuna
    from optuna.storages import RDBStorage

    from .recovery import heartbeat_settings, on_stale_heartbeat

    if url.startswith(("journal:", "file:")) or url.endswith(".journal"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = url.split(":", 1)[1] if url.startswith(("journal:", "file:")) else url
        return JournalStorage(JournalFileBackend(path))
    interval, grace = heartbeat_settings()
    engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():  # heartbeat is marked experimental; it is what we need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=interval, grace_period=grace,
                heartbeat_stale_trial_callback=on_stale_heartbeat,
            )
    except (ValueError, ImportError, optuna.exceptions.StorageInternalError) as e:
        raise ConfigError(f"--storage is not a usable Optuna storage URL. Received: storage={url!r} ({e})") from None


def make_sampler(exp: Experiment, trial_index: int | None = None):
    """Seeded sampler named by the experiment.

    With `trial_index` (the number of trials the study holds before this one), the seed is
    derived from the experiment's seed and that index: a sequential sweep is reproducible, a
    resumed sweep does not replay the first trials' draws, and parallel workers (each asking
    at a different index, under the study lock) do not sample the same configurations.
    """
    import numpy as np
    import optuna

    seed = exp.seed
    # Not for the grid: GridSampler maps trial numbers to points through an order shuffled by its
    # seed, so every trial and worker must share one seed for the grid to be covered exactly once.
    if trial_index is not None and exp.sampler != "grid":
        seed = int(np.random.SeedSequence([exp.seed, trial_index]).generate_state(1)[0] & (2**31 - 1))
    if exp.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if exp.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid_search_space(exp.search_space), seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(exp: Experiment):
    """Pruner named by the experiment; steps count epochs across repeats."""
    import optuna

    steps = exp.train.epochs * exp.repeats
    if exp.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, exp.train.epochs // 2))
    if exp.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(2, steps))
    return optuna.pruners.NopPruner()


def finished_states():
    import optuna

    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def count_finished(study) -> int:
    """Trials that count toward the budget: completed or pruned (failed ones are not)."""
    return len(study.get_trials(deepcopy=False, states=finished_states()))


def identity(exp: Experiment) -> str:
    """Hash of everything that must not change when a study is resumed (the budget may)."""
    import hashlib

    resolved = exp.resolved()
    for key in ("trials", "max_consecutive_failures", "ablation"):
        resolved.pop(key, None)
    return hashlib.sha256(yaml.safe_dump(resolved, sort_keys=True).encode()).hexdigest()


@dataclass
class SweepOutcome:
    """What a sweep did, for the terminal summary and for tests."""

    study_name: str
    parent_run_id: str
    budget: int
    finished: int
    ran_now: int
    best: list = field(default_factory=list)


class _Progress:
    """Optuna callback: one line per trial, and the failure-streak stop."""

    def __init__(self, budget: int, max_failures: int, echo: Callable[[str], None]):
        self.budget, self.max_failures, self.echo = budget, max_failures, echo
        self.started = time.perf_counter()
        self.streak = 0
        self.last_reason = ""
        self.ran = 0
        self.aborted = False

    def __call__(self, study, trial) -> None:
        import optuna

        self.ran += 1
        state = trial.state.name
        done = count_finished(study)
        try:
            best = study.best_trial
            best_text = f"best {best.value:.4f} (t{best.number:02d})"
        except ValueError:
            best_text = "best -"
        value = f"{trial.value:.4f}" if trial.value is not None else "-"
        label = space.TrialConfig.from_flat(trial.user_attrs["config"]).label() if "config" in trial.user_attrs else ""
        secs = trial.duration.total_seconds() if trial.duration else 0.0
        line = (f"[{min(done, self.budget):>3}/{self.budget}] t{trial.number:02d} {state:<8} {value:>7}  {best_text}"
                f"  {secs:6.1f}s  elapsed {time.perf_counter() - self.started:6.0f}s  {label}")
        if trial.state == optuna.trial.TrialState.FAIL:
            self.streak += 1
            self.last_reason = trial.user_attrs.get("failure_reason", "see the MLflow run's traceback.txt")
            line += f"  ({self.last_reason})"
        else:
            self.streak = 0
        self.echo(line)
        if self.streak >= self.max_failures:
            self.aborted = True
            study.stop()
        elif done >= self.budget:
            study.stop()


def _budget(exp: Experiment, trials: int | None) -> int:
    budget = trials if trials is not None else exp.trials
    if budget < 1:
        raise ConfigError(f"--trials must be >= 1. Received: trials={budget}")
    return budget


def study_locks(stores: Stores, storage: str | None):
    """(start lock, liveness lock) of the study; see `recovery`."""
    from .recovery import study_locks as locks

    return locks(stores.mlruns, storage is None, stores.storage_url, stores.study_name)


def open_study(exp: Experiment, stores: Stores, dataset, budget: int, echo: Callable[[str], None],
               device: str, policy: str, attach: bool = False):
    """Create or load the study and open the sweep's parent MLflow run; call under the start lock.

    `attach` (a worker started by `--workers`): join the parent run its launcher opened.
    Returns (study, budget, tracker).
    """
    import optuna

    from .tracking import Tracker

    study = optuna.create_study(
        study_name=stores.study_name, storage=make_storage(stores.storage_url),
        sampler=make_sampler(exp), pruner=make_pruner(exp), direction="minimize", load_if_exists=True,
    )
    ident = identity(exp)
    known = study.user_attrs.get(ATTR_EXPERIMENT_HASH)
    if known and known != ident:
        raise ConfigError(
            f"study {stores.study_name!r} in {stores.storage_url} was created from a different experiment "
            f"(dataset, search space, training or seeds changed). Received: {exp.path}; use --study-name NEW "
            f"or another --mlruns"
        )
    if exp.sampler == "grid" and budget > space.grid_size(exp.search_space):
        if not attach:
            echo(f"note: the grid has {space.grid_size(exp.search_space)} configurations; "
                 f"the sweep stops when it is exhausted (trials: {budget})")
        budget = space.grid_size(exp.search_space)

    tracker = Tracker(stores.tracking_uri, exp.name, stores.artifact_location)
    if attach and study.user_attrs.get(ATTR_PARENT_RUN):
        tracker.parent_run_id = study.user_attrs[ATTR_PARENT_RUN]
        return study, budget, tracker
    resolved_yaml = yaml.safe_dump(exp.resolved(), sort_keys=False)
    parent = tracker.start_parent(
        run_name=f"sweep {stores.study_name}",
        tags={"kind": "sweep", "study": stores.study_name, "sampler": exp.sampler, "pruner": exp.pruner,
              "git_commit": runtime.git_commit(), "device": device, "dtype_policy": policy,
              "backend": runtime.backend() if policy else os.environ.get("KERAS_BACKEND", "tensorflow"), "budget": budget,
              "optuna_storage": stores.storage_url, "dataset_fingerprint": dataset.fingerprint},
        params={"dataset": exp.dataset.source, "image_size": "x".join(map(str, exp.dataset.image_size)),
                "epochs": exp.train.epochs, "batch_size": exp.train.batch_size, "repeats": exp.repeats,
                "sampler": exp.sampler, "pruner": exp.pruner, "seed": exp.seed,
                "train_images": len(dataset.x_train), "val_images": len(dataset.x_val),
                "classes": dataset.num_classes},
        files={"experiment.yaml": resolved_yaml,
               "versions.yaml": yaml.safe_dump(runtime.package_versions(), sort_keys=True)},
        resume_run_id=study.user_attrs.get(ATTR_PARENT_RUN),
    )
    study.set_user_attr(ATTR_PARENT_RUN, parent)
    study.set_user_attr(ATTR_EXPERIMENT_HASH, ident)
    study.set_user_attr(ATTR_TRACKING_URI, stores.tracking_uri)
    study.set_user_attr("experiment", exp.resolved())
    study.set_user_attr("dataset_fingerprint", dataset.fingerprint)
    return study, budget, tracker


def count_running(study) -> int:
    import optuna

    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))


POLL_SECONDS = 2.0  # a worker with nothing to start checks again this often (others' trials may fail)


def _optimize(study, exp: Experiment, objective, progress: "_Progress", budget: int, start_lock,
              echo: Callable[[str], None]) -> None:
    """Start trials until `budget` have finished, one at a time, with the count-then-start step
    under the study's start lock: two workers that both see `budget - 1` finished can never both
    start one (a trial counts from the moment it is RUNNING). Dead workers' trials are failed
    and requeued first."""
    import optuna

    from .recovery import close_orphan_runs, reap_dead_trials, retry_once, worker_identity

    me = worker_identity()
    first, told = True, False
    while not progress.aborted:
        start_lock.acquire()
        state = {"released": False, "number": None}
        try:
            reap_dead_trials(study, echo)
            if first:
                close_orphan_runs(study, echo)
                first = False
            finished, running = count_finished(study), count_running(study)
            if finished >= budget:
                return
            if finished + running < budget:
                def gated(trial):
                    start_lock.release()  # the trial is RUNNING now: it counts for every other worker
                    state["released"], state["number"] = True, trial.number
                    trial.set_user_attr("worker", me)
                    with runtime.interruptible():
                        return objective(trial)

                study.sampler = make_sampler(exp, len(study.get_trials(deepcopy=False)))
                try:
                    # Interrupts wait while Optuna does its own bookkeeping around the objective (an
                    # exception inside one of its storage calls breaks its clean-up) and go through
                    # at once inside the objective, which fails the trial in both stores.
                    with runtime.store_write():
                        study.optimize(gated, n_trials=1, callbacks=[progress], catch=(Exception,),
                                       gc_after_trial=False)
                except KeyboardInterrupt:  # Ctrl-C / SIGTERM: Optuna has failed the trial; retry it once
                    if state["number"] is not None:
                        t = study.get_trials(deepcopy=False)[state["number"]]
                        if t.state == optuna.trial.TrialState.FAIL:
                            retry_once(study, t)
                    raise
                continue
        finally:
            if not state["released"]:
                start_lock.release()
        if not told:
            echo(f"waiting: the rest of the budget is running in other processes ({finished}/{budget} finished)")
            told = True
        time.sleep(POLL_SECONDS)  # one of those trials may still fail and leave a slot


def prepare(exp: Experiment, mlruns: str | Path, storage: str | None, tracking_uri: str | None,
            study_name: str | None, echo: Callable[[str], None]):
    """The dataset (bad data: exit 2 before any store is touched) and the stores, their folder made."""
    import optuna

    dataset = load_dataset(exp.dataset, exp.seed)
    for note in dataset.warnings:
        echo(f"warning: {note}")
    stores = resolve_stores(exp, mlruns, storage, tracking_uri, study_name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is None or tracking_uri is None:
        stores.mlruns.mkdir(parents=True, exist_ok=True)
    return dataset, stores


def run_sweep(exp: Experiment, trials: int | None = None, mlruns: str | Path = "mlruns",
              storage: str | None = None, tracking_uri: str | None = None, study_name: str | None = None,
              echo: Callable[[str], None] = print, worker: int | None = None) -> SweepOutcome:
    """Run (or resume) the experiment's study until `trials` trials have finished in total.

    Several processes may run this on the same stores at once (`worker` marks one started by
    `--workers`, which leaves the parent run to its launcher).
    """
    budget = _budget(exp, trials)
    dataset, stores = prepare(exp, mlruns, storage, tracking_uri, study_name,
                              echo if worker is None else (lambda line: None))

    from .objective import Objective
    from .tracking import FAILED, FINISHED, KILLED

    start_lock, alive = study_locks(stores, storage)
    alive.acquire(shared=True)  # for --repair: a sweep process on this machine is alive
    try:
        device = runtime.configure_device()
        policy = runtime.set_precision(exp.train.mixed_precision)
        with start_lock:
            study, budget, tracker = open_study(exp, stores, dataset, budget, echo, device, policy,
                                                attach=worker is not None)
        already = count_finished(study)
        if worker is None:
            echo(f"augsweep: study {stores.study_name!r} on {dataset.describe()}; device {device}; "
                 f"{already}/{budget} trials finished, {max(0, budget - already)} to go")
        progress = _Progress(budget, exp.max_consecutive_failures, echo)
        objective = Objective(exp, dataset, tracker, grid=exp.sampler == "grid", device=device)
        try:
            _optimize(study, exp, objective, progress, budget, start_lock, echo)
        except BaseException:
            if worker is None:
                tracker.end_parent(KILLED)
            raise
        if progress.aborted:
            if worker is None:
                tracker.end_parent(FAILED)
            raise SweepAborted(
                f"{progress.streak} consecutive trials failed; last reason: {progress.last_reason}. "
                f"Stopping: something is systematically wrong (see the failed runs in MLflow)."
            )
        if worker is None and count_running(study) == 0:  # else the last process to finish closes it
            tracker.end_parent(FINISHED)
        return outcome(study, stores.study_name, tracker.parent_run_id, budget, progress.ran)
    finally:
        alive.release()


def outcome(study, study_name: str, parent_run_id: str, budget: int, ran_now: int) -> SweepOutcome:
    """The sweep's state as read back from the study."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = sorted(complete, key=lambda t: t.value)[:5]
    return SweepOutcome(study_name, parent_run_id, budget, count_finished(study), ran_now, best)


def _running_runs(tracking_uri: str | None, experiment_name: str) -> set[str]:
    """Ids of the experiment's MLflow runs whose status is RUNNING."""
    if not tracking_uri:
        return set()
    from .tracking import client_for

    client = client_for(tracking_uri)
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        return set()
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'", max_results=50000)
    return {r.info.run_id for r in runs}


def repair(exp: Experiment, mlruns: str | Path = "mlruns", storage: str | None = None,
           tracking_uri: str | None = None, study_name: str | None = None,
           echo: Callable[[str], None] = print) -> tuple[int, int]:
    """Without training: fail the trials of dead workers (queueing their configurations once
    more), close MLflow runs left RUNNING, and the parent run when no sweep process is alive.
    Returns (trials failed, runs closed)."""
    stores = resolve_stores(exp, mlruns, storage, tracking_uri, study_name)
    if storage is None and not (stores.mlruns / "optuna.db").exists():
        raise ConfigError(f"nothing to repair: no study store at {stores.mlruns / 'optuna.db'}. "
                          f"Received: --mlruns {mlruns}")
    import optuna

    from .recovery import close_orphan_runs, reap_dead_trials
    from .tracking import KILLED, client_for

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=stores.study_name, storage=make_storage(stores.storage_url))
    except KeyError:
        raise ConfigError(f"nothing to repair: no study {stores.study_name!r} in {stores.storage_url}. "
                          f"Received: {exp.path}") from None
    start_lock, alive = study_locks(stores, storage)
    nobody_alive = alive.acquire(blocking=False)  # exclusive: no sweep process on this machine
    uri = study.user_attrs.get(ATTR_TRACKING_URI)
    before = _running_runs(uri, exp.name)
    try:
        with start_lock:
            failed = reap_dead_trials(study, echo, no_local_workers=nobody_alive)
            close_orphan_runs(study, echo)
            parent = study.user_attrs.get(ATTR_PARENT_RUN)
            if nobody_alive and parent and parent in _running_runs(uri, exp.name) and count_running(study) == 0:
                client_for(uri).set_terminated(parent, KILLED)
                echo(f"closed the sweep's parent run {parent} as KILLED (no sweep process is alive)")
    finally:
        if nobody_alive:
            alive.release()
    closed = len(before - _running_runs(uri, exp.name))
    waiting = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    echo(f"repair: {failed} dead trial(s) failed, {closed} MLflow run(s) closed; "
         f"{count_finished(study)} trials finished, {waiting} queued for retry, {count_running(study)} running"
         + ("" if nobody_alive else " (a sweep process is alive on this machine; its trials were left alone)"))
    return failed, closed


def summary_lines(outcome: SweepOutcome, exp: Experiment, mlruns: str | Path) -> list[str]:
    """End-of-sweep table of the best trials and where to look next."""
    lines = [f"\n{outcome.finished}/{outcome.budget} trials finished ({outcome.ran_now} run now). Best trials:"]
    lines.append(f"  {'trial':>5}  {'value':>8}  configuration")
    for t in outcome.best:
        cfg = space.TrialConfig.from_flat(t.user_attrs["config"])
        mags = ", ".join(f"{k[4:]}={v:.3g}" if isinstance(v, float) else f"{k[4:]}={v}"
                         for k, v in t.user_attrs["config"].items()
                         if k.startswith("aug_") and not isinstance(v, bool))
        lines.append(f"  t{t.number:02d}    {t.value:8.4f}  {cfg.label()}{'  (' + mags + ')' if mags else ''}")
    lines += [
        "",
        "Look further:",
        f"  make ui                                  # MLflow UI over {mlruns}/ (http://127.0.0.1:5000)",
        f"  python report.py {exp.path} --mlruns {mlruns}   # effects, CIs and verdicts",
        f"  python sweep.py {exp.path} --mlruns {mlruns} --ablation   # why the best trial wins (paired seeds)",
    ]
    return lines


def main_sweep(args) -> int:
    """Entry point behind `sweep.py` after argument parsing."""
    from .config import load_experiment

    exp = load_experiment(args.experiment)
    kwargs = dict(mlruns=args.mlruns, storage=args.storage, tracking_uri=args.tracking_uri,
                  study_name=args.study_name)
    if getattr(args, "repair", False):
        repair(exp, **kwargs)
        return 0
    workers = getattr(args, "workers", 1) or 1
    if workers > 1:
        from .workers import run_workers

        result = run_workers(exp, workers, trials=args.trials, **kwargs)
    else:
        result = run_sweep(exp, trials=args.trials, **kwargs)
    print("\n".join(summary_lines(result, exp, args.mlruns)))
    sys.stdout.flush()
    return 0
