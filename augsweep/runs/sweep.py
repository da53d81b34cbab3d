"""A sweep: validated experiment -> Optuna study (resumable, shared by workers) -> MLflow runs.

`SweepSession` is what the single-process sweep and the `--workers` launcher share: budget, locks,
the study and the parent MLflow run, opened under the study's start lock and closed with the
right status. One module over 400 lines on purpose: opening, resuming and closing a session are one protocol
under that lock.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import yaml

from .. import runtime
from ..experiment import space
from ..experiment.identity import identities, identity, identity_changes, outdated
from ..experiment.schema import ConfigError, Experiment
from ..learned import chance_loss_of
from ..runtime import RunEnv
from ..stores import records as rec
from ..stores.liveness import worker_identity
from ..stores.records import ATTR_EXPERIMENT_HASH, ATTR_PARENT_RUN, ATTR_TRACKING_URI
from ..stores.recovery import close_orphan_runs, close_trial_run, reap_dead_trials, retry_once
from ..stores.study import (
    Stores,
    check_runs_not_lost,
    check_study_not_lost,
    count_finished,
    count_running,
    finished_states,
    make_storage,
    study_locks,
)
from ..stores.tracking import FAILED, FINISHED, KILLED, Tracker, client_for
from ..stores.watch import DatabaseWatch, watched
from ..training.data import load_dataset
from ..training.model import check_model


class SweepAborted(RuntimeError):
    """Too many consecutive failed trials: something is systematically wrong."""


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
    """Pruner named by the experiment; steps count epochs across repeats (step 0 = the first epoch).

    `median` may prune from the first epoch on, once 4 trials have finished (bench/pruning.py, 6-epoch digits:
    1.5-1.6x configurations per hour, best value unchanged; the old warm-up of half the epochs gave 1.1-1.2x).
    `successive_halving` and `hyperband` use a minimum resource of 1 step and Optuna's reduction factor 3;
    Optuna's rungs start at step `min_resource`, so their first decision comes after the second epoch.
    """
    import optuna

    steps = exp.train.epochs * exp.repeats
    if exp.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    if exp.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if exp.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(2, steps), reduction_factor=3)
    return optuna.pruners.NopPruner()


def budget_of(exp: Experiment, trials: int | None) -> int:
    """Finished trials wanted in total: `--trials`, else the file's `trials`."""
    budget = trials if trials is not None else exp.trials
    if budget < 1:
        raise ConfigError(f"--trials must be >= 1. Received: trials={budget}")
    return budget


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
        self.watch = None  # `first_look.LearningWatch`: warns once when the first look's networks learned nothing

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
        record = rec.TrialRecord.from_trial(trial)
        label = space.TrialConfig.from_flat(record.config).label() if record.config is not None else ""
        secs = trial.duration.total_seconds() if trial.duration else 0.0
        line = (f"[{min(done, self.budget):>3}/{self.budget}] t{trial.number:02d} {state:<8} {value:>7}  {best_text}"
                f"  {secs:6.1f}s  elapsed {time.perf_counter() - self.started:6.0f}s  {label}")
        reps = record.repeats
        # Scored, but a configuration none of whose repeats reached one finite epoch never trained: in a row,
        # such trials say the set-up is broken as clearly as failures do.
        never = (trial.state == optuna.trial.TrialState.COMPLETE and reps
                 and all(r.get("best_epoch", 0) < 0 for r in reps))
        diverged = sum(1 for r in reps if "diverged_epoch" in r)
        if trial.state == optuna.trial.TrialState.FAIL or never:
            self.streak += 1
            self.last_reason = (trial.user_attrs.get(rec.FAILURE_REASON, "see the MLflow run's traceback.txt")
                                if not never else "non-finite loss at epoch 0 in every repeat (scored at ln K)")
            line += f"  ({self.last_reason})"
        else:
            self.streak = 0
            if diverged:
                line += f"  ({diverged} of {len(reps)} repeat(s) diverged; scored, not dropped)"
        self.echo(line)
        if self.watch is not None and trial.state == optuna.trial.TrialState.COMPLETE:
            self.watch(study)
        if self.streak >= self.max_failures:
            self.aborted = True
            study.stop()
        elif done >= self.budget:
            study.stop()


def open_study(exp: Experiment, stores: Stores, dataset, budget: int, echo: Callable[[str], None],
               env: RunEnv | None, attach: bool = False):
    """Create or load the study and open the sweep's parent MLflow run; call under the start lock
    (with PostgreSQL a lock inside the database: the schema, the study, the MLflow experiment and the
    parent run are created once, by the first worker, while the others wait).

    `env`: how this process trains (its tags go on the parent run); None for a `--workers` launcher, which
    never trains (its workers tag the parent run). `attach` (a worker started by `--workers`, or a `--worker`
    peer): join the parent run that the launcher or the first peer opened. Returns (study, budget, tracker).
    """
    import warnings

    import optuna

    if stores.embedded_study and not stores.study_db.exists():
        check_study_not_lost(stores)  # before the file is created: a refused sweep writes nothing
    storage = make_storage(stores.storage_url)
    check_study_not_lost(stores, storage)
    study = optuna.create_study(
        study_name=stores.study_name, storage=storage,
        sampler=make_sampler(exp), pruner=make_pruner(exp), direction="minimize", load_if_exists=True,
    )
    check_runs_not_lost(stores, study)  # before the tracker creates an empty MLflow store in its place
    ident = identity(exp)
    known = study.user_attrs.get(ATTR_EXPERIMENT_HASH)
    if known and known not in identities(exp):  # an older study may hold the hash from before a late key
        changed = outdated(exp, known)
        if changed:
            raise ConfigError(
                f"study {stores.study_name!r} in {stores.storage_label} was created before {'; '.join(changed)}. "
                f"Its trials measured the old meaning, so it is not resumed. Received: {exp.path}; use "
                f"--study-name NEW or another --mlruns"
            )
        changes = identity_changes(study.user_attrs.get(rec.ATTR_EXPERIMENT), exp)
        what = ("; ".join(changes[:3]) + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")
                if changes else "dataset, search space, training or seeds changed")  # a study that predates it
        # Folder data now draws a split per seed replicate by default; a study made on one split says how to go on.
        one_split = any(c.startswith("dataset.resample: none →") for c in changes)
        hint = "; add `dataset.resample: none` to continue it on its one data split" if one_split else ""
        raise ConfigError(
            f"study {stores.study_name!r} in {stores.storage_label} was created from a different experiment "
            f"({what}). Received: {exp.path}; use --study-name NEW or another --mlruns{hint}"
        )
    if exp.sampler == "grid" and budget > space.grid_size(exp.search_space):
        if not attach:
            echo(f"note: the grid has {space.grid_size(exp.search_space)} configurations; "
                 f"the sweep stops when it is exhausted (trials: {budget})")
        budget = space.grid_size(exp.search_space)

    tracker = Tracker(stores.tracking_uri, exp.name, stores.artifact_location)
    if attach and study.user_attrs.get(ATTR_PARENT_RUN):
        tracker.attach_parent(study.user_attrs[ATTR_PARENT_RUN])
        return study, budget, tracker
    resolved_yaml = yaml.safe_dump(exp.resolved(), sort_keys=False)
    parent = tracker.start_parent(
        run_name=f"sweep {stores.study_name}",
        tags={rec.TAG_KIND: rec.KIND_SWEEP, rec.TAG_STUDY: stores.study_name, "sampler": exp.sampler,
              "pruner": exp.pruner,
              rec.TAG_GIT_COMMIT: runtime.git_commit(), "budget": budget,
              **(rec.env_tags(env) if env is not None
                 else {rec.TAG_DETERMINISTIC: str(exp.train.deterministic).lower()}),
              "optuna_storage": stores.storage_label, rec.TAG_DATASET_FINGERPRINT: dataset.fingerprint,
              "data_pipeline": dataset.pipeline, **model_tags(exp)},
        params={"dataset": exp.dataset.source, "image_size": "x".join(map(str, exp.dataset.image_size)),
                "epochs": exp.train.epochs, "batch_size": exp.train.batch_size, "repeats": exp.repeats,
                "sampler": exp.sampler, "pruner": exp.pruner, "seed": exp.seed,
                "train_images": len(dataset.x_train), "val_images": len(dataset.x_val),
                rec.PARAM_DATA_SPLIT: rec.data_split(dataset.pool is not None),
                rec.PARAM_CLASSES: dataset.num_classes,
                # The loss of guessing the validation classes' prior: the report's did-it-learn gate reads it.
                rec.PARAM_CHANCE: round(chance_loss_of(dataset.y_val, dataset.num_classes), 6)},
        files={"experiment.yaml": resolved_yaml,
               "versions.yaml": yaml.safe_dump(runtime.package_versions(), sort_keys=True)},
        resume_run_id=study.user_attrs.get(ATTR_PARENT_RUN),
    )
    # The tracking URI is stored masked, resolved back by tracking.client_for.
    for key, value in rec.StudyRecord(parent, ident, stores.tracking_label, exp.resolved(),
                                      dataset.fingerprint).to_attrs().items():
        study.set_user_attr(key, value)
    if study.metric_names is None:
        with warnings.catch_warnings():  # experimental in Optuna; optuna-dashboard shows the objective's name
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(["val_loss"])
    return study, budget, tracker


def model_tags(exp: Experiment) -> dict:
    """The network as MLflow tags (`model_base`, `model_weights`, `model_trainable`, `model_weights_sha256`)."""
    import hashlib
    from pathlib import Path

    m = exp.model
    tags = {"model_base": m.base, "model_weights": m.weights, "model_trainable": str(m.trainable).lower()}
    if Path(m.weights).is_file():  # the file's contents, not only its name, identify the base a run started from
        tags["model_weights_sha256"] = hashlib.sha256(Path(m.weights).read_bytes()).hexdigest()
    return tags


class _NoTrialFailureEcho:
    """Logging filter: Optuna's own "Trial N failed ... because of the following error" warnings (with the
    whole traceback: 32 lines for one Ctrl-C) are dropped; the sweep prints its own line for every failed
    trial with the reason, and the run keeps the traceback (`traceback.txt`)."""

    def filter(self, record) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Trial ") and " failed with " in record.msg)


class _NoFallbackQueryEcho:
    """Logging filter: Optuna's "Caught an error from sqlalchemy: … Falling back to a slower alternative." warning
    is dropped. Optuna reads any OperationalError of its trials query as too many SQL variables and retries the
    query without them; when the database is gone (a lost PostgreSQL: "server closed the connection") the retry
    fails too, and the sweep says so in its own one line. When the retry succeeds there is nothing to say."""

    def filter(self, record) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Caught an error from sqlalchemy"))


def quiet_optuna_failures() -> None:
    """Install `_NoTrialFailureEcho` once on the logger of Optuna's optimize loop, and `_NoFallbackQueryEcho` on
    its storage's."""
    import logging

    for name, kind in (("optuna.study._optimize", _NoTrialFailureEcho),
                       ("optuna.storages._rdb.storage", _NoFallbackQueryEcho)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


def prepare(exp: Experiment, stores: Stores, echo: Callable[[str], None]):
    """The dataset and the model's base checked (bad input: exit 2 before any store is touched), the stores'
    folder made."""
    import optuna

    dataset = load_dataset(exp.dataset, exp.seed, exp.path)
    for note in dataset.warnings:
        echo(f"warning: {note}")
    check_model(exp.model, dataset.input_shape)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_optuna_failures()
    stores.make_dirs()
    return dataset


OWNER, SPAWNED, PEER = "owner", "spawned", "peer"


class SweepSession:
    """The study shared by every process of a sweep, held open for one process.

    Entering takes the liveness lock (shared: `--repair` learns that a sweep process is alive),
    opens the study and the parent run under the start lock. The `role` says who closes the parent
    run: the `owner` (the process the user started) ends it KILLED when the block raises, FAILED on
    `abort`, FINISHED by `finish` once no trial is running anywhere; a `spawned` worker (of
    `--workers`) leaves it to its launcher; a `peer` (`--worker`, one of many equal processes on
    many machines) attaches to it (or opens it, the first one), never fails it for the others, and
    the last peer to find the budget done ends it FINISHED.
    """

    def __init__(self, exp: Experiment, stores: Stores, dataset, budget: int, echo: Callable[[str], None],
                 env: RunEnv | None, role: str = OWNER):
        self.exp, self.stores, self.dataset, self.echo = exp, stores, dataset, echo
        self.budget, self.env, self.role = budget, env, role
        self.owner = role == OWNER
        self.start_lock, self.alive = study_locks(stores)
        self.study = self.tracker = None
        self.already = 0
        self.planner = None
        self.watch = None
        if exp.sampler == "factorial":
            from .blocks import BlockPlanner

            self.planner = BlockPlanner(exp, budget, echo, chance_loss_of(dataset.y_val, dataset.num_classes))
            self.budget = self.planner.budget

    def __enter__(self) -> "SweepSession":
        self.alive.acquire(shared=True)
        if watched(self.stores.storage_url):  # a lost database server ends this process in seconds, in one line
            self.watch = DatabaseWatch(self.stores.storage_url, f"augsweep sweep {self.exp.path} ...").start()
        try:
            with self.start_lock:
                self.study, self.budget, self.tracker = open_study(
                    self.exp, self.stores, self.dataset, self.budget, self.echo, self.env,
                    attach=self.role != OWNER)
            self.already = count_finished(self.study)
        except BaseException:
            if self.watch is not None:
                self.watch.stop()
            self.alive.release()
            raise
        return self

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if kind is not None and self.owner and not isinstance(exc, SweepAborted):
                self.tracker.end_parent(KILLED)
        finally:
            if self.watch is not None:
                self.watch.stop()
            self.alive.release()
            self.start_lock.close()  # a `Lock`: the advisory lock's connection, the lock file

    def header(self, where: str) -> str:
        return (f"augsweep: study {self.stores.study_name!r} on {self.dataset.describe()}; {where}; "
                f"{self.already}/{self.budget} trials finished, {max(0, self.budget - self.already)} to go")

    def abort(self, message: str) -> SweepAborted:
        """End the parent run FAILED (owner) and return the exception to raise."""
        if self.owner:
            self.tracker.end_parent(FAILED)
        return SweepAborted(message)

    def finish(self) -> None:
        """End the parent run FINISHED, unless trials still run elsewhere (the last process closes it)."""
        if self.role != SPAWNED and count_running(self.study) == 0:
            self.tracker.end_parent(FINISHED)

    def outcome(self, ran_now: int) -> "SweepOutcome":
        return outcome(self.study, self.stores.study_name, self.tracker.parent_run_id, self.budget, ran_now)


POLL_SECONDS = 2.0  # a worker with nothing to start checks again this often (others' trials may fail)


def optimize(study, exp: Experiment, objective, progress: "_Progress", budget: int, start_lock,
              echo: Callable[[str], None], planner=None) -> None:
    """Start trials until `budget` have finished, one at a time, with the count-then-start step
    under the study's start lock: two workers that both see `budget - 1` finished can never both
    start one (a trial counts from the moment it is RUNNING). Dead workers' trials are failed
    and requeued first. With a `planner` (factorial design) it decides instead: run a queued
    design point, wait for the block to finish elsewhere, or stop."""
    import optuna

    me = worker_identity()
    first, told = True, False
    while not progress.aborted:
        start_lock.acquire()
        state = {"released": False, "number": None}
        try:
            # One read of the study per attempt (a storage round trip each, under the lock).
            trials = study.get_trials(deepcopy=False)
            if reap_dead_trials(study, echo, running=[t for t in trials if t.state == optuna.trial.TrialState.RUNNING]):
                trials = study.get_trials(deepcopy=False)
            if first:
                close_orphan_runs(study, echo)
                first = False
            finished = sum(t.state in finished_states() for t in trials)
            running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
            action = planner.next_action(study) if planner is not None else (
                "stop" if finished >= budget else "run" if finished + running < budget else "wait")
            if action == "stop":
                return
            if action == "run":
                def gated(trial):
                    start_lock.release()  # the trial is RUNNING now: it counts for every other worker
                    state["released"], state["number"] = True, trial.number
                    trial.set_user_attr(rec.WORKER, me)
                    with runtime.interruptible():
                        return objective(trial)

                study.sampler = make_sampler(exp, len(trials))
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
                            # Interrupted after its run was written COMPLETE but before Optuna was told:
                            # the run must not claim what the study failed.
                            try:
                                close_trial_run(study, t, t.user_attrs.get(rec.FAILURE_REASON) or "interrupted")
                            except Exception:
                                pass  # the next resume reconciles it (recovery.close_orphan_runs)
                    raise
                continue
        finally:
            if not state["released"]:
                start_lock.release()
        if not told:
            echo(f"waiting: the rest of the budget is running in other processes ({finished}/{budget} finished)")
            told = True
        time.sleep(POLL_SECONDS)  # one of those trials may still fail and leave a slot


def run_sweep(exp: Experiment, stores: Stores, trials: int | None = None, echo: Callable[[str], None] = print,
              worker: tuple[int, int] | None = None, peer: bool = False, env: RunEnv | None = None,
              members: int | str = 1, helper: bool = False) -> SweepOutcome:
    """Run (or resume) the experiment's study until `trials` trials have finished in total.

    Several processes may run this on the same stores at once (`worker` = (index, workers) marks one started by
    `--workers`, which leaves the parent run to its launcher; `peer` one of many `--worker`
    processes, possibly on many machines, sharing a database storage and a tracking server). `env`: how this
    process trains, as its entry point set it up (`runtime.setup`); set up from the experiment when None.
    `members`: seed replicates of a trial trained as one program (`runs.members`: auto or N; 1 one at a time).
    `helper`: co-training programs of the block's other network shapes train in a helper process beside this one
    where that can help (`runs.sidecar`: a CPU with a core to spare, the stacked engine).
    """
    from .members import describe, engine_for, resolve_members
    from .objective import Objective
    from .progress import SweepProgress
    from .sidecar import Sidecar, sidecar_helps

    budget = budget_of(exp, trials)
    env = env or runtime.setup(exp.train.deterministic, exp.train.mixed_precision)
    dataset = prepare(exp, stores, echo if worker is None else (lambda line: None))
    role = SPAWNED if worker is not None else PEER if peer else OWNER
    per_program, rule = resolve_members(members, exp)
    beside = helper and sidecar_helps(exp, env, per_program, engine_for(members))
    with SweepSession(exp, stores, dataset, budget, echo, env, role=role) as session:
        if role == PEER:
            from ..stores.liveness import HOST

            echo(session.header(f"worker {HOST}:{os.getpid()} on {env.device}; storage {stores.storage_label}, "
                                f"tracking {stores.tracking_label}"))
        elif worker is None:
            session.tracker.tag_parent({"workers": 1})
            echo(session.header(f"device {env.device}; {describe(per_program, rule, exp.repeats)}"
                                + ("; a helper process trains the block's points of other depths beside this one"
                                   if beside else "")))
        else:  # spawned by `--workers`: the same tags a single-process sweep's parent run carries
            session.tracker.tag_parent(rec.env_tags(env))
        if worker is None or worker[0] == 0:
            session.tracker.tag_parent({"members": per_program, "members_rule": rule or "--members N",
                                        "cotrain_helper": int(beside)})
        progress = _Progress(session.budget, exp.max_consecutive_failures, echo)
        from .first_look import LearningWatch, first_look_size

        progress.watch = LearningWatch(
            exp, chance_loss_of(dataset.y_val, dataset.num_classes), dataset.num_classes,
            first_look_size(exp, session.budget, session.planner.block_size if session.planner else None), echo)
        shown = SweepProgress(session.budget, lambda: session.already + progress.ran, exp.train.epochs,
                              exp.repeats, echo, parallel=worker[1] if worker is not None else 1)
        objective = Objective(exp, dataset, session.tracker, env, grid=exp.sampler == "grid",
                              progress=shown, members=per_program, engine=engine_for(members))
        if beside:
            objective.sidecar = Sidecar(objective.cotrained, exp.train.deterministic, exp.train.mixed_precision,
                                        pin_threads=env.training_threads == "1")
        try:
            optimize(session.study, exp, objective, progress, session.budget, session.start_lock, echo,
                     planner=session.planner)
        finally:
            if objective.sidecar is not None:
                objective.sidecar.close()
        if progress.aborted:
            raise session.abort(
                f"{progress.streak} consecutive trials failed; last reason: {progress.last_reason}. "
                f"Stopping: something is systematically wrong (see the failed runs in MLflow)."
            )
        session.finish()
        return session.outcome(progress.ran)


def distinct_best(trials, top: int) -> list:
    """The `top` best distinct configurations (`config_name`) by their mean value over their trials, each
    shown by its best trial with `mean_value` and `n_config_trials` user attrs read from this list (not stored)."""
    groups: dict[str, list] = {}
    for t in trials:
        groups.setdefault(t.user_attrs.get(rec.CONFIG_NAME, f"t{t.number}"), []).append(t)
    ranked = sorted(groups.values(), key=lambda g: (sum(t.value for t in g) / len(g), min(t.number for t in g)))
    out = []
    for g in ranked[:top]:
        rep = min(g, key=lambda t: (t.value, t.number))
        out.append((rep, sum(t.value for t in g) / len(g), len(g)))
    return out


def outcome(study, study_name: str, parent_run_id: str, budget: int, ran_now: int) -> SweepOutcome:
    """The sweep's state as read back from the study."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = distinct_best(complete, 5)
    return SweepOutcome(study_name, parent_run_id, budget, count_finished(study), ran_now, best)


def _running_runs(tracking_uri: str | None, experiment_name: str) -> set[str]:
    """Ids of the experiment's MLflow runs whose status is RUNNING."""
    if not tracking_uri:
        return set()
    client = client_for(tracking_uri)
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        return set()
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'", max_results=50000)
    return {r.info.run_id for r in runs}


def repair(exp: Experiment, stores: Stores, echo: Callable[[str], None] = print) -> tuple[int, int]:
    """Without training: fail the trials of dead workers (queueing their configurations once
    more), close MLflow runs left RUNNING, and the parent run when no sweep process is alive.
    Returns (trials failed, runs closed)."""
    if not stores.has_study_store():
        raise ConfigError(f"nothing to repair: no study store at {stores.study_db}. "
                          f"Received: --mlruns {stores.mlruns}")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=stores.study_name, storage=make_storage(stores.storage_url))
    except KeyError:
        raise ConfigError(f"nothing to repair: no study {stores.study_name!r} in {stores.storage_label}. "
                          f"Received: {exp.path}") from None
    start_lock, alive = study_locks(stores)
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
        start_lock.close()  # the advisory lock's connection would otherwise stay open until exit
        if nobody_alive:
            alive.release()
    closed = len(before - _running_runs(uri, exp.name))
    waiting = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    echo(f"repair: {failed} dead trial(s) failed, {closed} MLflow run(s) closed; "
         f"{count_finished(study)} trials finished, {waiting} queued for retry, {count_running(study)} running"
         + ("" if nobody_alive else " (a sweep process is alive on this machine; its trials were left alone)"))
    return failed, closed


