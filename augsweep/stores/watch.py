"""A sweep on a database server (PostgreSQL, MySQL) ends within seconds when the server goes away.

Without a watch, a worker that lost its database learned it only at its next write (the end of a trial, or
Optuna's heartbeat thread, whose traceback went to the terminal), then waited on MLflow's HTTP retries against a
tracking server that had lost the same database: 2-3 minutes and 142 lines. The watch pings the database on its
own connection every `INTERVAL` seconds with a short connect timeout; after `TRIES` failures in a row it writes
the traceback to a log file, prints the one line that names it and the command that resumes, and ends the
process with exit 1. The stores stay consistent: the trial in flight stays RUNNING in Optuna, and the resume
(or `augsweep repair`) fails it by its dead process or its stale heartbeat and queues it once more.
"""

from __future__ import annotations

import os
import sys
import threading

from .. import runtime

INTERVAL = 1.0  # seconds between pings
TRIES = 3  # failures in a row before the process ends: a restart of a few seconds is not a loss
PING_TIMEOUT = 2  # seconds: a ping's connect timeout (the server is on the network, or it is gone)
ENV_INTERVAL = "AUGSWEEP_DB_WATCH_INTERVAL"


def watched(url: str | None) -> bool:
    """A storage URL on a database server (the embedded SQLite file needs no watch)."""
    from .urls import scheme_of

    return bool(url) and scheme_of(url) in ("postgresql", "mysql")


class DatabaseWatch:
    """The watch over one storage URL, started by `start` and stopped by `stop` (a daemon thread)."""

    def __init__(self, url: str, fallback_command: str):
        self.url, self.fallback = url, fallback_command
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="augsweep-database-watch", daemon=True)

    def start(self) -> "DatabaseWatch":
        _quiet_thread_errors()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        from .urls import database_engine_kwargs

        kwargs = database_engine_kwargs(self.url)
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "connect_timeout": PING_TIMEOUT}
        kwargs.pop("pool_pre_ping", None)
        engine = sqlalchemy.create_engine(self.url, poolclass=NullPool, **kwargs)
        interval = _interval()
        failures, last = 0, None
        while not self._stop.wait(interval):
            try:
                with engine.connect() as conn:
                    conn.execute(sqlalchemy.text("SELECT 1"))
                failures = 0
            except Exception as e:  # noqa: BLE001 - every driver has its own error classes
                failures, last = failures + 1, e
                if failures >= TRIES and not self._stop.is_set():
                    self._end(last)
        engine.dispose()

    def _end(self, error: BaseException) -> None:
        """Tell in one line (the traceback in a log file it names) and end the process, exit 1."""
        from .urls import first_line, mask

        runtime.ENDING.acquire()  # never released: the process ends holding it, so no second line follows
        try:
            where = runtime.log_traceback(error, mask)
            line = runtime.stopped_line("database lost", mask(first_line(error, self.url)[:200]),
                                        mask(runtime.resume_command(self.fallback)), where)
            sys.stdout.flush()
            print(runtime.one_line(line), file=sys.stderr, flush=True)
        finally:
            os._exit(1)


def _interval() -> float:
    raw = os.environ.get(ENV_INTERVAL, "")
    try:
        value = float(raw) if raw else INTERVAL
    except ValueError:
        value = INTERVAL
    return value if 0.05 <= value <= 60 else INTERVAL


_HOOKED = []


def _quiet_thread_errors() -> None:
    """Errors of background threads (Optuna's heartbeat) caused by a lost database or a full disk go to a log file,
    not the terminal: the process is about to end with its one line, which must come first. Any other thread error
    is printed as before."""
    if _HOOKED:
        return
    previous = threading.excepthook

    def hook(args) -> None:
        if args.exc_value is not None and runtime.environment_cause(args.exc_value) is not None:
            from .urls import mask

            runtime.log_traceback(args.exc_value, mask)
            return
        previous(args)

    threading.excepthook = hook
    _HOOKED.append(hook)

