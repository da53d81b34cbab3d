"""Helpers shared by the benchmarks: alternating rounds, medians, tables, the machine's name."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def alternate(fns: Mapping[str, Callable[[], tuple[float, float] | None]], rounds: int):
    """Run every function once per round, in the same order each round.

    Returns (wall, cpu): name -> seconds per call, by the wall clock and by this process's CPU
    time (all threads). A function may return its own (wall, cpu) for the part it times.
    Alternating makes drift of a shared machine hit every side alike; CPU time is far less
    sensitive than wall time to other people's processes on the same cores.
    """
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            value = fn()
            if value is None:
                value = (time.perf_counter() - w, time.process_time() - c)
            wall[name].append(float(value[0]))
            cpu[name].append(float(value[1]))
    return wall, cpu


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, cpu) seconds of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


@contextlib.contextmanager
def temp_stores(experiment: dict):
    """An experiment written to a throwaway folder with its dataset and embedded stores (folder made).

    Yields (experiment, dataset, stores); everything is deleted on the way out.
    """
    import tempfile

    import optuna
    import yaml

    from augsweep.experiment import load_experiment
    from augsweep.stores.study import resolve_stores
    from augsweep.training.data import load_dataset

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exp.yaml"
        path.write_text(yaml.safe_dump(experiment))
        exp = load_experiment(path)
        stores = resolve_stores(exp, Path(tmp) / "mlruns")
        stores.mlruns.mkdir()
        yield exp, load_dataset(exp.dataset, exp.seed), stores


@contextlib.contextmanager
def objective_on_temp_stores(experiment: dict, tracker_cls=None):
    """A real `Objective` with its Optuna study and MLflow parent run on throwaway SQLite stores.

    Yields (dataset, study, objective); the sampler and pruner are the ones a sweep of this
    experiment would use, and the parent run is ended on the way out.
    """
    import optuna

    from augsweep import runtime
    from augsweep.runs.objective import Objective
    from augsweep.runs.sweep import make_pruner, make_sampler
    from augsweep.stores.study import make_storage
    from augsweep.stores.tracking import Tracker

    with temp_stores(experiment) as (exp, ds, stores):
        tracker = (tracker_cls or Tracker)(stores.tracking_uri, exp.name, stores.artifact_location)
        tracker.start_parent("bench", {"kind": "sweep"}, {}, {})
        study = optuna.create_study(study_name=exp.name, storage=make_storage(stores.storage_url),
                                    sampler=make_sampler(exp), pruner=make_pruner(exp))
        env = runtime.setup(exp.train.deterministic, exp.train.mixed_precision)
        yield ds, study, Objective(exp, ds, tracker, env)
        tracker.end_parent()


def median(values) -> float:
    return float(statistics.median(values))


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table (pastes straight into bench/RESULTS.md)."""
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def rounds_text(values, fmt: str = "{:.2f}") -> str:
    return " ".join(fmt.format(v) for v in values)


def machine() -> str:
    """CPU model and cores, plus the Keras backend (accelerators are named by the scripts using them)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
