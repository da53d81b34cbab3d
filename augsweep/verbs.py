"""One function per verb, shared by the command line (`cli`) and the Python API (`api`): each checks its
arguments (`arguments`), loads the experiment, resolves and checks the stores, and chooses how to run (one
process, N workers, a peer worker), so both entry points refuse the same inputs and take the same path.

The entry points stay thin: `cli` parses and prints, `api` wraps the result for notebooks. Arguments are named
the way the caller spells them (`--trials` on the command line, `trials` in Python: `Names`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from . import arguments
from .runtime import UserError

DICT_FOLDER = Path(".augsweep")  # where an experiment given as a dict is written (commands name a file)


@dataclass(frozen=True)
class Names:
    """How the caller spells each argument in its one-line errors."""

    trials: str = "trials"
    workers: str = "workers"
    repeats: str = "repeats"
    mlruns: str = "mlruns"
    out: str = "out"
    storage: str = "storage"
    tracking_uri: str = "tracking_uri"
    study_name: str = "study_name"
    reproduce: str = "target"
    members: str = "members"


API = Names()
CLI = Names("--trials", "--workers", "--repeats", "--mlruns", "--out", "--storage", "--tracking-uri", "--study-name",
            "--reproduce", "--members")


def experiment_of(value: Any):
    """An `Experiment` from itself, a YAML path, or a dict of its keys (written to `.augsweep/<name>.yaml` in the
    current folder, so that every printed command names a file)."""
    import sys

    # An Experiment exists only once its module is loaded: a path is checked before anything is imported, so that a
    # missing file is refused before the heavy modules load.
    schema = sys.modules.get("augsweep.experiment.schema")
    if schema is not None and isinstance(value, schema.Experiment):
        return value
    if isinstance(value, Mapping):
        import yaml

        from .experiment.load import load_experiment as load

        name = value.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise UserError(f"an experiment dict needs a `name` of letters, digits, '.', '_' or '-'. "
                            f"Received: name={name!r}")
        DICT_FOLDER.mkdir(exist_ok=True)
        path = DICT_FOLDER / f"{name}.yaml"
        path.write_text(yaml.safe_dump(dict(value), sort_keys=False))
        return load(path)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise UserError(f"the experiment must be a YAML file path, a dict of its keys or an Experiment. "
                        f"Received: {arguments.shown(value)}")
    path = Path(value)
    if not path.is_file():
        what = "is not a file" if path.exists() else "file not found"
        raise UserError(f"experiment {what}. Received: path={value!r}")
    from .experiment.load import load_experiment as load

    return load(path)


def check_stores(mlruns, storage, tracking_uri, study_name, names: Names = API) -> tuple[str | None, str | None,
                                                                                          str | None]:
    """The store arguments, checked before anything is read; returns (storage, tracking_uri, study_name)."""
    arguments.mlruns(mlruns, names.mlruns)
    return (arguments.url(storage, names.storage), arguments.url(tracking_uri, names.tracking_uri),
            arguments.study_name(study_name, names.study_name))


def experiment_and_stores(experiment, mlruns="mlruns", storage=None, tracking_uri=None, study_name=None, *,
                          training: bool = False, sweep: bool = False, names: Names = API):
    """The store arguments checked, the experiment loaded and its stores resolved and checked: `--mlruns` naming a
    file, a 0-byte database, an unreachable server are refused now, with nothing written. `training`: also the
    checks a training run needs that cost milliseconds (`check_before_training`, `sweep` for a sweep's), made
    before the stores' modules (pandas, MLflow) and TensorFlow load."""
    storage, tracking_uri, study_name = check_stores(mlruns, storage, tracking_uri, study_name, names)
    exp = experiment_of(experiment)
    if training:
        from .experiment.load import check_before_training

        check_before_training(exp, sweep=sweep)
    from .stores.study import resolve_stores

    stores = resolve_stores(exp, mlruns, storage, tracking_uri, study_name)
    stores.check_paths()
    stores.check_servers()
    return exp, stores


@dataclass
class Swept:
    """What the sweep verb ran: the experiment, its stores, the `SweepOutcome` and how it ran."""

    exp: Any
    stores: Any
    outcome: Any
    workers: int  # processes that trained (1: this one)
    rule: str  # why that many, for `workers="auto"`; "" for an explicit count


def sweep(experiment, *, trials=None, workers: int | str = 1, mlruns="mlruns", storage=None, tracking_uri=None,
          study_name=None, peer: bool = False, members: int | str = 1, echo: Callable[[str], None] = print,
          start: Callable[[int], None] | None = None, names: Names = API) -> Swept:
    """Run (or resume) a sweep: in this process, in N spawned workers (`workers`, or `"auto"`), or as one `peer`
    of many equal workers on a shared database and tracking server. Bad input raises `UserError` before anything
    is written. `start(budget)` is called once everything is checked, before the first line is echoed (the API's
    progress bar). `members`: seed replicates of a trial trained as one program (`runs.members`). Raises
    `runs.sweep.SweepAborted` when the sweep stops on repeated failures."""
    trials = arguments.trials(trials, names.trials)
    workers = arguments.workers(workers, names.workers)
    members = arguments.members(members, names.members)
    arguments.storage_for_workers(arguments.url(storage, names.storage), workers, peer,
                                  (names.storage, names.workers))
    if peer and workers != 1:
        raise UserError(f"a worker runs one sweep process; start it N times instead of {names.workers} N. "
                        f"Received: {names.workers}={workers}")
    exp, stores = experiment_and_stores(experiment, mlruns, storage, tracking_uri, study_name, training=True,
                                        sweep=True, names=names)
    from .stores.run_files import repoint_moved_store

    repoint_moved_store(stores, echo)  # new runs go where the stores are now, never to a folder they left
    from .runs.sweep import budget_of, run_sweep
    from .runs.workers import resolve_workers, run_workers

    if start is not None:
        start(budget_of(exp, trials))
    n, rule = (1, "") if peer else resolve_workers(workers, exp, trials)
    if workers == "auto" and n > 1:
        from .runs.members import resolve_members

        if resolve_members(members, exp)[0] > exp.repeats:
            # A second worker would pop the very queued design points this one's programs train along.
            n, rule = 1, ("one process: its programs train the block's queued design points (--members auto), "
                          "and, with a core and the memory to spare, those of another depth in a helper process "
                          "beside it")
    if n > 1:
        outcome = run_workers(exp, stores, n, trials=trials, echo=echo, rule=rule, members=members)
    else:
        outcome = run_sweep(exp, stores, trials=trials, echo=echo, peer=peer, members=members,
                            helper=workers == "auto" and not peer)
    return Swept(exp, stores, outcome, n, rule)


def ablate(experiment, *, repeats=None, mlruns="mlruns", storage=None, tracking_uri=None, study_name=None,
           members: int | str = 1, echo: Callable[[str], None] = print, names: Names = API):
    """Paired-seed ablation around the base configuration; returns (exp, stores, `AblationOutcome`). `members`:
    trainings per compiled program (`runs.ablation.ablation_members`: auto, N, or 1 one at a time)."""
    repeats = arguments.repeats(repeats, names.repeats)
    members = arguments.members(members, names.members)
    exp, stores = experiment_and_stores(experiment, mlruns, storage, tracking_uri, study_name, training=True,
                                        names=names)
    from .stores.run_files import repoint_moved_store

    repoint_moved_store(stores, echo)
    from .runs.ablation import run_ablation

    return exp, stores, run_ablation(exp, stores, repeats=repeats, echo=echo, members=members)


def reproduce(experiment, target, *, mlruns="mlruns", storage=None, tracking_uri=None, study_name=None,
              echo: Callable[[str], None] = print, names: Names = API):
    """Retrain a logged trial or ablation variant and compare; returns the `Reproduction`."""
    target = arguments.reproduce(target, names.reproduce)
    if target is None:
        raise UserError(f"{names.reproduce} needs a trial number or an ablation variant name. Received: None")
    exp, stores = experiment_and_stores(experiment, mlruns, storage, tracking_uri, study_name, training=True,
                                        names=names)
    from .runs.reproduce import reproduce as run

    return run(exp, stores, target, echo=echo)


def repair(experiment, *, mlruns="mlruns", storage=None, tracking_uri=None, study_name=None,
           echo: Callable[[str], None] = print, names: Names = API) -> tuple[int, int]:
    """Fail trials of dead workers and close runs left RUNNING, without training; (failed, closed)."""
    exp, stores = experiment_and_stores(experiment, mlruns, storage, tracking_uri, study_name, names=names)
    from .runs.sweep import repair as run

    return run(exp, stores, echo=echo)


def report(experiment, *, mlruns="mlruns", out=None, storage=None, tracking_uri=None, study_name=None,
           names: Names = API):
    """Write the report from the stores (never retrains); returns the `report.write.Written`."""
    arguments.out(out, names.out)
    exp, stores = experiment_and_stores(experiment, mlruns, storage, tracking_uri, study_name, names=names)
    from .report.write import write

    return write(exp, stores, out)
