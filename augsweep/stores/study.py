"""Where a study's results live: the `Stores` (embedded under `mlruns/` or given as URLs), the Optuna
storage behind them, the study's counts and locks, and its trainings table (one row per trial x repeat)."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from .. import runtime
from ..experiment.schema import ConfigError, Experiment
from ..experiment.space import aug_key, parse_aug_key
from .records import ATTR_EXPERIMENT_HASH, ATTR_PARENT_RUN, ATTR_TRACKING_URI, KIND_TRIAL, TrialRecord, kind_filter
from .urls import sqlite_file

__all__ = ["ATTR_EXPERIMENT_HASH", "ATTR_PARENT_RUN", "ATTR_TRACKING_URI"]  # re-exported: the keys are `records`'


def _shown_path(path: Path) -> str:
    """`path` relative to the current directory when it is below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Stores:
    """Where the study and the runs live; resolved once (by the CLI) and handed to every domain function."""

    mlruns: Path
    storage_url: str
    tracking_uri: str
    artifact_location: str | None
    study_name: str
    embedded_study: bool = True  # the Optuna study is the SQLite file under `mlruns`
    embedded_tracking: bool = True  # MLflow is the SQLite file + artifact folder under `mlruns`

    @property
    def study_db(self) -> Path:
        return self.mlruns / "optuna.db"

    @property
    def tracking_db(self) -> Path:
        return self.mlruns / "mlflow.db"

    @property
    def storage_label(self) -> str:
        """The storage URL as printed and logged: password masked."""
        from .urls import mask

        return mask(self.storage_url)

    @property
    def tracking_label(self) -> str:
        from .urls import mask

        return mask(self.tracking_uri)

    def options(self, mlruns: str | Path | None = None) -> str:
        """The store options to repeat in a follow-up command (URLs masked); `mlruns` as the user wrote it."""
        shown = str(mlruns if mlruns is not None else _shown_path(self.mlruns))
        parts = [f"--mlruns {shown}" if self.embedded_study or self.embedded_tracking else "",
                 "" if self.embedded_study else f"--storage {self.storage_label}",
                 "" if self.embedded_tracking else f"--tracking-uri {self.tracking_label}"]
        return " ".join(p for p in parts if p)

    def command(self, script: str, exp: Experiment, *extra, mlruns: str | Path | None = None) -> str:
        """A follow-up command on these stores that runs as printed in a fresh shell (`runtime.follow_up`):
        `make report EXP=… MLRUNS=…` for the embedded stores, else the venv's python with the URLs (masked)."""
        return self.follow_ups(exp, mlruns)(script, *extra)

    def follow_ups(self, exp: Experiment, mlruns: str | Path | None = None) -> runtime.FollowUp:
        """How `command` writes follow-up commands on these stores, as a value (`runtime.FollowUp`)."""
        shown = str(mlruns if mlruns is not None else _shown_path(self.mlruns))
        urls = " ".join(p for p in ("" if self.embedded_study else f"--storage {self.storage_label}",
                                    "" if self.embedded_tracking else f"--tracking-uri {self.tracking_label}",
                                    "" if self.study_name == exp.name else f"--study-name {self.study_name}") if p)
        local = self.embedded_study or self.embedded_tracking
        return runtime.FollowUp(exp.path, shown if local else None, urls)

    def check_servers(self) -> None:
        """Bad URLs exit 2 before anything is written: connect once to a storage database and ask a
        tracking server's /health, each within `urls.CONNECT_TIMEOUT`."""
        from .urls import check_database, check_tracking

        if not self.embedded_study and not self.storage_url.startswith(("journal:", "file:")):
            check_database(self.storage_url)
        if not self.embedded_tracking:
            check_tracking(self.tracking_uri)

    def check_paths(self) -> None:
        """Bad store paths exit 2 before anything is written: `--mlruns` (or a folder above it) naming a file,
        a folder this user cannot write, a journal "file" that is a folder, an SQLite file in a folder that does not
        exist (SQLAlchemy would create it anywhere), a 0-byte database file (SQLAlchemy would silently create an
        empty schema in it: a study that restarts at 0 trials while MLflow still holds its runs), and a file that
        is not an SQLite database at all (overwritten)."""
        if self.embedded_study or self.embedded_tracking:
            for folder in (self.mlruns, *self.mlruns.parents):
                if folder.exists() and not folder.is_dir():
                    raise ConfigError(f"--mlruns must be a folder, but {folder} is a file. "
                                      f"Received: mlruns={str(self.mlruns)!r}")
            nearest = next((f for f in (self.mlruns, *self.mlruns.parents) if f.exists()), None)
            if nearest is not None and not os.access(nearest, os.W_OK | os.X_OK):
                raise ConfigError(f"--mlruns cannot be written: {nearest} is not writable by this user. "
                                  f"Received: mlruns={str(self.mlruns)!r}")
        if self.storage_url.startswith(("journal:", "file:")) and Path(self.storage_url.split(":", 1)[1]).is_dir():
            raise ConfigError(f"--storage journal:PATH must name a journal file, but it names a folder. "
                              f"Received: storage={self.storage_label!r}")
        for what, url, label, embedded in (("--storage", self.storage_url, self.storage_label, self.embedded_study),
                                           ("--tracking-uri", self.tracking_uri, self.tracking_label,
                                            self.embedded_tracking)):
            db = sqlite_file(url)
            if db is not None and not embedded and not db.parent.is_dir():
                raise ConfigError(f"{what} names an SQLite file in a folder that does not exist ({db.parent}); "
                                  f"create the folder first, or fix the path. Received: {label}")
            if db is not None and db.is_file() and db.stat().st_size == 0:
                raise ConfigError(
                    f"{db} is an empty file (0 bytes), not a database: its study or runs were lost (a full disk, "
                    f"a truncated copy). Restore it from a backup, or move it away to start a new store "
                    f"({what}). Received: {_shown_path(db)} (0 bytes)")
            if db is not None and db.is_file() and not _sqlite_header(db):
                raise ConfigError(
                    f"{db} is not an SQLite database (its first bytes are not SQLite's header): the file was "
                    f"overwritten or damaged. Restore it from a backup, or move it away to start a new store "
                    f"({what}). Received: {_shown_path(db)} ({db.stat().st_size} bytes)")

    def has_study_store(self) -> bool:
        """A study store exists (a URL always may; the embedded file only once a sweep made it)."""
        return not self.embedded_study or self.study_db.exists()

    def has_tracking_store(self) -> bool:
        return not self.embedded_tracking or self.tracking_db.exists()

    def make_dirs(self) -> None:
        """Create `mlruns/` when either store is embedded."""
        if self.embedded_study or self.embedded_tracking:
            self.mlruns.mkdir(parents=True, exist_ok=True)


SQLITE_HEADER = b"SQLite format 3\x00"


def _sqlite_header(db: Path) -> bool:
    """`db` begins with SQLite's 16-byte header (a file that does not is no database, whatever SQLite would say
    later and deeper: 'file is not a database' from inside MLflow's migrations)."""
    try:
        with open(db, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return True  # unreadable here: left to the database's own error


def check_study_not_lost(stores: Stores, storage=None) -> None:
    """Refuse to start a study afresh in a storage that lacks it while MLflow holds trial runs of it: the
    study store was lost or replaced, and starting again would duplicate t00, t01... beside orphaned runs.
    `storage`: the opened Optuna storage (None: the embedded file does not exist, so it holds no study)."""
    import optuna

    if storage is not None and stores.study_name in optuna.get_all_study_names(storage):
        return
    if not stores.has_tracking_store():
        return
    from .tracking import client_for

    client = client_for(stores.tracking_uri)
    experiment = client.get_experiment_by_name(stores.study_name)
    if experiment is None:
        return
    runs = client.search_runs([experiment.experiment_id], kind_filter(KIND_TRIAL, stores.study_name), max_results=1)
    if runs:
        raise ConfigError(
            f"the Optuna storage {stores.storage_label} has no study {stores.study_name!r}, but MLflow "
            f"({stores.tracking_label}) holds trial runs of it: the study store was lost or replaced. Restore it "
            f"(or point --storage/--mlruns at it), or start a new study with --study-name NEW. "
            f"Received: storage={stores.storage_label}")


def check_runs_not_lost(stores: Stores, study) -> None:
    """The mirror of `check_study_not_lost`: refuse a study whose finished trials have no MLflow store (the
    embedded `mlflow.db` missing) or whose tracking store lacks their runs (lost, replaced, or another store
    given). Continuing would add trials beside finished ones that have no curves, artifacts or model."""
    import optuna

    from .records import MLFLOW_RUN_ID

    finished = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if t.user_attrs.get(MLFLOW_RUN_ID)]
    if not finished:
        return
    last = finished[-1]
    why = None
    if stores.embedded_tracking and not stores.tracking_db.exists():
        why = f"{_shown_path(stores.tracking_db)} is missing"
    else:
        from mlflow.exceptions import MlflowException

        from .tracking import client_for

        try:
            client_for(stores.tracking_uri).get_run(last.user_attrs[MLFLOW_RUN_ID])
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            why = f"{stores.tracking_label} has no run of its trial t{last.number:02d}"
    if why:
        raise ConfigError(
            f"study {stores.study_name!r} has {len(finished)} finished trial(s), but {why}: the MLflow store was "
            f"lost or replaced. Restore it (or point --tracking-uri/--mlruns at it), or start a new study with "
            f"--study-name NEW. Received: tracking={stores.tracking_label}")


def resolve_stores(exp: Experiment, mlruns: str | Path = "mlruns", storage: str | None = None,
                   tracking_uri: str | None = None, study_name: str | None = None) -> Stores:
    """Embedded defaults under `mlruns` (Optuna SQLite + MLflow SQLite + artifacts), or the URLs given."""
    from .tracking import artifact_root_for, remember_uri, tracking_uri_for
    from .urls import check_userinfo

    for what, url in (("--storage", storage), ("--tracking-uri", tracking_uri)):
        if url:
            check_userinfo(url, what)  # before any parser sees it: a raw '@' or '/' would print the password
    if tracking_uri:
        remember_uri(tracking_uri)  # recovery reads the masked URI back from the study
    root = Path(mlruns)
    return Stores(
        mlruns=root,
        storage_url=storage or f"sqlite:///{root.resolve() / 'optuna.db'}",
        tracking_uri=tracking_uri or tracking_uri_for(root),
        artifact_location=None if tracking_uri else artifact_root_for(root),
        study_name=study_name or exp.name,
        embedded_study=storage is None,
        embedded_tracking=tracking_uri is None,
    )


def make_storage(url: str):
    """Optuna storage for a URL.

    The embedded default is SQLite (one file beside MLflow's, read by the report) with a 120 s
    busy timeout, so parallel workers wait for each other's short writes instead of failing
    with "database is locked", and a heartbeat: a trial of a worker that died on another
    machine is failed after `liveness.HEARTBEAT_GRACE` s and its configuration retried once.
    (Optuna's JournalStorage also takes parallel workers but has no heartbeat.)
    """
    import optuna
    from optuna.storages import RDBStorage

    from .liveness import heartbeat_settings
    from .recovery import on_stale_heartbeat

    runtime.tune_sqlite()  # before the first connection: WAL + synchronous=NORMAL
    if url.startswith(("journal:", "file:")) or url.endswith(".journal"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = url.split(":", 1)[1] if url.startswith(("journal:", "file:")) else url
        return JournalStorage(JournalFileBackend(path))
    interval, grace = heartbeat_settings()
    from .urls import database_engine_kwargs, first_line, mask

    engine_kwargs = database_engine_kwargs(url)
    try:
        with warnings.catch_warnings():  # heartbeat is marked experimental; it is what we need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=interval, grace_period=grace,
                heartbeat_stale_trial_callback=on_stale_heartbeat,
            )
    except (ValueError, ImportError, optuna.exceptions.StorageInternalError) as e:
        raise ConfigError(f"--storage is not a usable Optuna storage URL. Received: storage={mask(url)!r} "
                          f"({first_line(e, url)})") from None
    except Exception as e:  # noqa: BLE001 - SQLAlchemy/driver errors: unreachable server, wrong password
        import sqlalchemy.exc

        if not isinstance(e, sqlalchemy.exc.SQLAlchemyError):
            raise
        raise ConfigError(f"cannot open the Optuna storage {mask(url)}: {first_line(e, url)}") from None


def load_study_readonly(stores: Stores):
    """The stores' study, or None when there is none (never creates a store)."""
    import optuna

    if not stores.has_study_store():
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=stores.study_name, storage=make_storage(stores.storage_url))
    except KeyError:
        return None


def load_study(stores: Stores):
    """The stores' study, or a ConfigError that says how to create it."""
    import optuna

    study = load_study_readonly(stores)
    if study is not None:
        check_runs_not_lost(stores, study)
    if study is None:
        names = ([s.study_name for s in optuna.get_all_study_summaries(make_storage(stores.storage_url),
                                                                        include_best_trial=False)]
                 if stores.has_study_store() else [])
        raise ConfigError(
            f"no study named {stores.study_name!r} in {stores.storage_label} (found: {sorted(names) or 'none'}); "
            f"run `augsweep sweep` on this experiment first"
        )
    return study


def finished_states():
    import optuna

    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def count_finished(study) -> int:
    """Trials that count toward the budget: completed or pruned (failed ones are not)."""
    return len(study.get_trials(deepcopy=False, states=finished_states()))


def count_running(study) -> int:
    import optuna

    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))


def study_locks(stores: Stores):
    """(start lock, liveness lock) of the study; see `locks`."""
    from .locks import study_locks as locks

    return locks(stores.mlruns, stores.embedded_study, stores.storage_url, stores.study_name)


def trainings_table(study, augmentations):
    """One row per (trial, repeat) of the study's COMPLETE trials: `trial`, `block`, `repeat`, the repeat's
    summary (`best_val_loss`, `gap`, `best_val_accuracy`, `best_epoch`, `epochs_run`, `final_loss`), `depth`,
    `design_point`, `diverged`, `aug_<name>` switches, numeric magnitudes `aug_<name>_<param>` and `config_key`
    (the configuration, to spot replicas)."""
    import json

    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        rec = TrialRecord.from_trial(t)
        if rec.state != "COMPLETE" or rec.config is None:
            continue
        cfg = rec.config
        # Only compared, never shown: JSON (what Optuna stored the config as) is ~40x faster than YAML
        # (0.7 s of a 1,000-trial report on a busy machine).
        key = json.dumps(cfg, sort_keys=True)
        for r, rep in enumerate(rec.repeats):
            rows.append({
                "trial": rec.number, "block": int(rec.block or 0), "repeat": r, "config_key": key,
                "best_val_loss": rep["best_val_loss"], "gap": rep.get("gap"),
                "best_val_accuracy": rep.get("best_val_accuracy"), "best_epoch": rep.get("best_epoch"),
                "epochs_run": rep.get("epochs_run"), "final_loss": rep.get("final_loss"),
                "final_val_loss": rep.get("final_val_loss"), "depth": cfg["depth"],
                "design_point": rec.design_point, "diverged": "diverged_epoch" in rep,
                **{aug_key(a): bool(cfg.get(aug_key(a), False)) for a in augmentations},
                # Numeric magnitudes (the fit's magnitude x switch terms); absent where the augmentation is off.
                **{k: float(v) for k, v in cfg.items() if _is_magnitude(k, augmentations)
                   and isinstance(v, (int, float)) and not isinstance(v, bool)},
            })
    return pd.DataFrame(rows)


def _is_magnitude(key: str, augmentations) -> bool:
    """An `aug_<name>_<param>` key (not a switch `aug_<name>` of the space's augmentations)."""
    parsed = parse_aug_key(key, augmentations)
    return parsed is not None and not (parsed[1] is None and parsed[0] in augmentations)
