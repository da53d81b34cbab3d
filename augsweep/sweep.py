"""A sweep: validated experiment -> Optuna study (resumable, embedded storage) -> MLflow runs."""

from __future__ import annotations

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
    """Optuna storage for a URL. SQLite gets a busy timeout (several workers) and a heartbeat, so a
    killed worker's trial is failed and its configuration retried once."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if url.startswith(("journal:", "file:")) or url.endswith(".journal"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = url.split(":", 1)[1] if url.startswith(("journal:", "file:")) else url
        return JournalStorage(JournalFileBackend(path))
    engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():  # heartbeat is marked experimental; it is what we need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=10, grace_period=60,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
    except (ValueError, ImportError, optuna.exceptions.StorageInternalError) as e:
        raise ConfigError(f"--storage is not a usable Optuna storage URL. Received: storage={url!r} ({e})") from None


def make_sampler(exp: Experiment):
    """Seeded sampler named by the experiment."""
    import optuna

    if exp.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=exp.seed)
    if exp.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid_search_space(exp.search_space), seed=exp.seed)
    return optuna.samplers.RandomSampler(seed=exp.seed)


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


def run_sweep(exp: Experiment, trials: int | None = None, mlruns: str | Path = "mlruns",
              storage: str | None = None, tracking_uri: str | None = None, study_name: str | None = None,
              echo: Callable[[str], None] = print) -> SweepOutcome:
    """Run (or resume) the experiment's study until `trials` trials have finished in total."""
    budget = trials if trials is not None else exp.trials
    if budget < 1:
        raise ConfigError(f"--trials must be >= 1. Received: trials={budget}")
    # Everything that can be wrong with the input is found before any store is touched.
    dataset = load_dataset(exp.dataset, exp.seed)
    for note in dataset.warnings:
        echo(f"warning: {note}")
    stores = resolve_stores(exp, mlruns, storage, tracking_uri, study_name)

    import optuna

    from .objective import Objective
    from .tracking import FAILED, FINISHED, KILLED, Tracker

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is None or tracking_uri is None:
        stores.mlruns.mkdir(parents=True, exist_ok=True)
    device = runtime.configure_device()
    policy = runtime.set_precision(exp.train.mixed_precision)
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
        echo(f"note: the grid has {space.grid_size(exp.search_space)} configurations; "
             f"the sweep stops when it is exhausted (trials: {budget})")
        budget = space.grid_size(exp.search_space)

    tracker = Tracker(stores.tracking_uri, exp.name, stores.artifact_location)
    resolved_yaml = yaml.safe_dump(exp.resolved(), sort_keys=False)
    parent = tracker.start_parent(
        run_name=f"sweep {stores.study_name}",
        tags={"kind": "sweep", "study": stores.study_name, "sampler": exp.sampler, "pruner": exp.pruner,
              "git_commit": runtime.git_commit(), "device": device, "dtype_policy": policy,
              "backend": runtime.backend(), "budget": budget, "optuna_storage": stores.storage_url,
              "dataset_fingerprint": dataset.fingerprint},
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

    already = count_finished(study)
    echo(f"augsweep: study {stores.study_name!r} on {dataset.describe()}; device {device}; "
         f"{already}/{budget} trials finished, {max(0, budget - already)} to go")
    progress = _Progress(budget, exp.max_consecutive_failures, echo)
    objective = Objective(exp, dataset, tracker, grid=exp.sampler == "grid", device=device)
    try:
        if already < budget:
            study.optimize(objective, callbacks=[progress], catch=(Exception,), gc_after_trial=False)
    except BaseException:
        tracker.end_parent(KILLED)
        raise
    if progress.aborted:
        tracker.end_parent(FAILED)
        raise SweepAborted(
            f"{progress.streak} consecutive trials failed; last reason: {progress.last_reason}. "
            f"Stopping: something is systematically wrong (see the failed runs in MLflow)."
        )
    tracker.end_parent(FINISHED)
    done = count_finished(study)
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    best = sorted(complete, key=lambda t: t.value)[:5]
    return SweepOutcome(stores.study_name, parent, budget, done, progress.ran, best)


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
    outcome = run_sweep(exp, trials=args.trials, mlruns=args.mlruns, storage=args.storage,
                        tracking_uri=args.tracking_uri, study_name=args.study_name)
    print("\n".join(summary_lines(outcome, exp, args.mlruns)))
    sys.stdout.flush()
    return 0
