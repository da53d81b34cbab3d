"""Exit codes and signals: the process's contract (2 bad input, 130 Ctrl-C, 143 SIGTERM) and the hold that keeps
an interruption out of a store write.

The hold (`_HOLD`) is the one piece of module state here, and it has to be: signal handlers are process-wide and
Python runs them on the main thread only, so the state they consult is the main thread's, not a run's.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the current trial is failed in Optuna and MLflow
    (Optuna fails a trial on KeyboardInterrupt but leaves it RUNNING on SystemExit)."""

    exit_code = 143


class UserError(ValueError):
    """Bad user input (a file, key, path or value): one line on stderr and exit code 2, no traceback."""


SHOWN = 80  # a received value is shown in an error cut to this many characters
MAX_LINE = 1000  # an error line is cut to this many characters, whatever it holds


def shown(value) -> str:
    """`repr(value)` cut to `SHOWN` characters: an error line stays short whatever it received."""
    text = repr(value)
    return text if len(text) <= SHOWN else f"{text[:SHOWN - 1]}…"


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """`text` as one line of at most `limit` characters (line breaks become spaces; an ellipsis marks a cut)."""
    flat = " ".join(str(text).split("\n"))
    return flat if len(flat) <= limit else f"{flat[:limit - 1]}…"


def log_traceback(error: BaseException, scrub=None) -> str:
    """The full traceback in a log file (`scrub`: hides passwords in it): the words that name the file, or a
    note when even that cannot be written (a full disk)."""
    import os
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(error))
    try:
        fd, path = tempfile.mkstemp(prefix="augsweep-error-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(scrub(text) if scrub else text)
        return f"full traceback in {path}"
    except OSError:
        return "the traceback could not be written either"


# What the environment did, not the code: a full disk, a database that went away. Found anywhere in the chain
# of causes (MLflow and Optuna wrap SQLAlchemy, which wraps the driver).
_DISK_FULL = ("database or disk is full", "no space left on device", "disk quota exceeded")
_WRITE_FAILED = ("disk i/o error", "file too large")  # SQLite's word for a failed write (a size limit, EIO)
_DB_LOST = ("connection refused", "server closed the connection", "terminating connection", "connection is closed",
            "could not connect to server", "the database system is shutting down", "connection timeout expired",
            "consuming input failed", "ssl syscall error")


def environment_cause(error: BaseException) -> tuple[str, BaseException] | None:
    """('disk full' | 'disk write failed' | 'database lost', the error in the chain of causes that says it: the
    driver's words, not a wrapper's), or None when the environment did not cause `error`."""
    import errno

    seen, e = set(), error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e).lower()
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) or any(s in text for s in _DISK_FULL):
            return "disk full", e
        if isinstance(e, OSError) and e.errno in (errno.EFBIG, errno.EIO) or any(s in text for s in _WRITE_FAILED):
            return "disk write failed", e
        if any(s in text for s in _DB_LOST):
            return "database lost", e
        e = e.__cause__ or e.__context__
    return None


def resume_command(fallback: str) -> str:
    """The command line this process was started with, as a shell can run it again (`python -m augsweep VERB …`,
    `python sweep.py …` or the console script); `fallback` for anything else (a spawned worker)."""
    from pathlib import Path

    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):  # `python -m augsweep VERB …`
        argv[0:1] = ["-m", "augsweep"]
    if argv and (argv[0].endswith(".py") or argv[0] == "-m"):
        return " ".join(["python", *argv])
    if argv and Path(argv[0]).name.startswith("augsweep"):  # the console scripts
        return " ".join(argv)
    return fallback


def stopped_line(cause: str, detail: str, command: str, where: str) -> str:
    """The one line a full disk or a lost database ends a sweep with (the words are already masked)."""
    return (f"error: {cause} ({detail}); the stores stay consistent: free space or restart the database, then "
            f"resume with: {command} ({where})")


# A lost database is seen by the main thread and the database watch at once: the watch takes this lock, prints its
# line and ends the process still holding it; the main thread prints its own line only while it can take it.
ENDING = threading.Lock()


def run_main(main, scrub=None) -> int:
    """Run `main()` with the process's exit-code contract: 2 for bad input (one line), 130 Ctrl-C,
    143 SIGTERM (both fail the current trial in the stores; see `interrupt_handler`), 1 for anything else:
    one line naming the error and the log file that holds its traceback (`scrub`: hides passwords in both).

    Every window answers an interruption with its exit code: the handlers are installed before `main`
    parses anything, an interruption held by `store_write()` when `main` returns is raised, and the
    handlers that were there before are put back only after the exit code is decided."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    saved_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_interrupts(saved_hook)
    signal.signal(signal.SIGTERM, interrupt_handler)
    if saved[signal.SIGINT] is signal.default_int_handler:  # not when SIGINT is ignored
        signal.signal(signal.SIGINT, interrupt_handler)
    try:
        code = main()
        if _HOLD["pending"] is not None:  # held by a store write that ended without raising it
            exc, _HOLD["pending"] = _HOLD["pending"], None
            raise exc
        return code
    except UserError as e:
        print(one_line(f"error: {e}"), file=sys.stderr)
        return 2
    except SystemExit as e:  # argparse's --help (0) or its one-line error (2), already printed
        return e.code if isinstance(e.code, int) else 2
    except KeyboardInterrupt as e:
        if getattr(e, "exit_code", None) == 143:
            print("terminated: the current trial was marked failed; rerun the same command to resume",
                  file=sys.stderr)
            return 143
        print("interrupted: the current trial was marked failed; rerun the same command to resume",
              file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the contract: one line first, the traceback in a file it names
        detail = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        line = f"error: {type(e).__name__}{': ' + detail if detail else ''}"
        where = log_traceback(e, scrub)
        print(one_line(f"{scrub(line) if scrub else line}"[:500] + f" ({where})"), file=sys.stderr)
        return 1
    finally:
        _HOLD["depth"], _HOLD["pending"], _HOLD["requested"] = 0, None, None
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        sys.unraisablehook = saved_hook


def _quiet_interrupts(hook):
    """`sys.unraisablehook` that drops a Ctrl-C/SIGTERM raised inside a finalizer or a weakref callback (Python
    would print "Exception ignored in: ..." and its traceback before the one line the process ends with): it is
    not lost, `raise_if_interrupted` raises it again where it can be taken. Anything else goes to `hook`."""
    def quiet(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _HOLD["requested"] is not None:
            return
        hook(unraisable)

    return quiet


# The hold is the main thread's: Python runs signal handlers there only. A store write on another thread
# (MLflow's background finishing) must not touch it: its unsynchronised count once went negative or stuck
# above 0 while the main thread held and released around it, and every later Ctrl-C was held for ever
# (and the sweep exited 0).
_HOLD = {"depth": 0, "pending": None, "requested": None}


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def interrupt_handler(signum, frame) -> None:
    """SIGINT/SIGTERM handler: raise KeyboardInterrupt/Terminated now, or, inside `store_write()`,
    when the write is done (an interruption in the middle of a SQLite write can leave the
    database locked for the clean-up that follows)."""
    exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    _HOLD["requested"] = type(exc)  # until `run_main` answers it (see `raise_if_interrupted`)
    if _HOLD["depth"]:
        _HOLD["pending"] = exc
        return
    raise exc


@contextlib.contextmanager
def store_write():
    """Hold Ctrl-C/SIGTERM (with `interrupt_handler` installed) until this block of store writes ends
    (on the main thread; elsewhere no signal can arrive, and the block holds nothing)."""
    if not _main_thread():
        yield
        return
    _HOLD["depth"] += 1
    try:
        yield
    finally:
        _HOLD["depth"] -= 1
        if _HOLD["depth"] == 0 and _HOLD["pending"] is not None:
            exc, _HOLD["pending"] = _HOLD["pending"], None
            raise exc


def raise_if_interrupted() -> None:
    """Raise again a Ctrl-C/SIGTERM that arrived but never reached `run_main`. Python runs a signal handler
    between any two bytecodes of the main thread, also inside a finalizer (`__del__`) or a weakref callback,
    where the exception it raises is printed as "Exception ignored" and dropped: the sweep then went on and
    exited 0. Called where an interruption can be taken (between epochs, before a trial); outside a hold."""
    kind = _HOLD["requested"]
    if kind is not None and not _HOLD["depth"] and _main_thread():
        raise kind()


@contextlib.contextmanager
def interruptible():
    """Within a `store_write()` hold, let Ctrl-C/SIGTERM through at once again (a held one is raised
    on entry). The sweep holds interrupts across Optuna's own bookkeeping, which an exception in the
    middle of a storage call can leave inconsistent, and opens them only inside the objective."""
    if not _main_thread():
        yield
        return
    saved = _HOLD["depth"]
    _HOLD["depth"] = 0
    try:
        if _HOLD["pending"] is not None:
            exc, _HOLD["pending"] = _HOLD["pending"], None
            raise exc
        yield
    finally:
        _HOLD["depth"] = saved
