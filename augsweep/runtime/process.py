"""Process-wide performance settings that never change a number: SQLite's journal mode, the garbage
collector's view of long-lived objects, TensorFlow's registry of traced gradients; and the cores and memory this
process may use.

Two one-shot guards live here (`_SQLITE_TUNED`, `_FREEZES`): each makes a process-wide install happen once
(an SQLAlchemy event listener; `gc.freeze` twice); neither decides how a run trains.
"""

from __future__ import annotations

import os

from .device import backend


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; `os.cpu_count` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# Resident memory of one training process (TensorFlow, Keras, MLflow, Optuna, the data): ~1.1 GiB measured.
RAM_GIB_PER_PROCESS = 1.5


def available_memory_gib() -> float | None:
    """MemAvailable from /proc/meminfo, in GiB; None where there is no such file."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        return None
    return None


def release_traced_gradients() -> int:
    """Drop the custom-gradient functions TensorFlow registered while tracing earlier models.

    Every trace of a training step registers a `CustomGradient-<uid>` function (from
    tf.distribute's all-reduce wrapper) in TensorFlow's global gradient registry and never
    removes it; each closure keeps its whole traced graph alive: about 6-8 MB and 10k Python
    objects per trained model, in plain Keras too (bench/memory.py). Backward graphs are built
    when a step is traced, so once `keras.backend.clear_session()` has discarded the earlier
    models nothing looks these entries up again. Returns how many were dropped; 0 on other
    backends or if TensorFlow's internals differ.
    """
    if backend() != "tensorflow":
        return 0
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry  # noqa: SLF001 - no public API for this
        stale = [name for name in registry if str(name).startswith("CustomGradient-")]
        for name in stale:
            del registry[name]
        return len(stale)
    except (ImportError, AttributeError, TypeError):
        return 0


_SQLITE_TUNED = False


def tune_sqlite() -> None:
    """Every SQLite connection SQLAlchemy opens in this process (Optuna's and MLflow's stores) uses
    write-ahead logging with `synchronous=NORMAL`.

    In SQLite's default rollback mode every commit waits for an fsync (2.7 ms each on this
    machine, against 0.01 ms in WAL+NORMAL), and a trial commits a few dozen times (Optuna
    suggestions, reports, user attributes; MLflow run, params, metrics, tags). WAL+NORMAL stays
    consistent after a crash of the process; only a power loss can drop the last commits. WAL
    also lets readers (the MLflow UI, other workers) proceed while a worker writes.
    """
    global _SQLITE_TUNED
    if _SQLITE_TUNED:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection, connection_record):  # noqa: ARG001 - SQLAlchemy's signature
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:  # read-only or in-memory database: keep SQLite's defaults
            pass
        finally:
            cursor.close()

    _SQLITE_TUNED = True


_FREEZES = 0


def freeze_long_lived_objects() -> None:
    """Collect, then move every surviving object out of the garbage collector's view (twice per process).

    Python's full collection walks every tracked object; after importing TensorFlow, Keras, MLflow,
    Optuna and pandas that is about half a million objects and ~0.2 s, paid at every
    `keras.backend.clear_session()` (once per repeat) and after every trial. Imported modules and
    the loaded dataset live for the whole process anyway; `gc.freeze` stops rescanning them.
    Called before each trial: it acts before the first (imports, stores, dataset) and before the
    second (modules imported lazily by the first trial), then never again.
    """
    import gc

    global _FREEZES
    if _FREEZES < 2:
        gc.collect()
        gc.freeze()
        _FREEZES += 1
