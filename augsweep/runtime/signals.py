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



def run_main(main) -> int:
    """Run `main()` with the process's exit-code contract: 2 for bad input (one line), 130 Ctrl-C,
    143 SIGTERM (both fail the current trial in the stores; see `interrupt_handler`).

    Every window answers an interruption with its exit code: the handlers are installed before `main`
    parses anything, an interruption held by `store_write()` when `main` returns is raised, and the
    handlers that were there before are put back only after the exit code is decided."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
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
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if getattr(e, "exit_code", None) == 143:
            print("terminated: the current trial was marked failed; rerun the same command to resume",
                  file=sys.stderr)
            return 143
        print("interrupted: the current trial was marked failed; rerun the same command to resume",
              file=sys.stderr)
        return 130
    finally:
        _HOLD["depth"], _HOLD["pending"] = 0, None
        for sig, handler in saved.items():
            signal.signal(sig, handler)


# The hold is the main thread's: Python runs signal handlers there only. A store write on another thread
# (MLflow's background finishing) must not touch it: its unsynchronised count once went negative or stuck
# above 0 while the main thread held and released around it, and every later Ctrl-C was held for ever
# (the sweep exited 0; issue 22, item 8).
_HOLD = {"depth": 0, "pending": None}


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def interrupt_handler(signum, frame) -> None:
    """SIGINT/SIGTERM handler: raise KeyboardInterrupt/Terminated now, or, inside `store_write()`,
    when the write is done (an interruption in the middle of a SQLite write can leave the
    database locked for the clean-up that follows)."""
    exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
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
