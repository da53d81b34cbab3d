"""Is a worker alive? The heartbeat settings (Optuna's, for workers on other machines) and the process
identity a trial records (host, pid and start time, exact on this machine). `recovery` reaps the trials
of the workers these say are gone."""

from __future__ import annotations

import os
import socket
from pathlib import Path

# The machine a worker records with its trials. Containers that share a host network (or tests that play
# several machines on one) name themselves with AUGSWEEP_HOST; their dead workers are then found by heartbeat.
HOST = os.environ.get("AUGSWEEP_HOST") or socket.gethostname()
# Optuna heartbeat: a running trial beats every INTERVAL s; after GRACE s without a beat it is stale.
HEARTBEAT_INTERVAL = 10  # seconds
HEARTBEAT_GRACE = 60  # seconds
ENV_INTERVAL = "AUGSWEEP_HEARTBEAT_INTERVAL"
ENV_GRACE = "AUGSWEEP_HEARTBEAT_GRACE"


def heartbeat_settings() -> tuple[int, int]:
    """(interval, grace) in seconds; the environment may shorten them (tests, preemptible nodes)."""
    from ..experiment.schema import ConfigError

    out = []
    for name, default in ((ENV_INTERVAL, HEARTBEAT_INTERVAL), (ENV_GRACE, HEARTBEAT_GRACE)):
        raw = os.environ.get(name, "")
        try:
            value = int(raw) if raw else default
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer (seconds). Received: {name}={raw!r}")
        out.append(value)
    interval, grace = out
    return interval, max(grace, interval + 1)


# ----------------------------------------------------------------------------- process identity


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) from /proc, or None where /proc is unavailable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return fields[0], fields[19]


def worker_identity() -> dict:
    """What a trial records about the process running it."""
    stat = _proc_stat(os.getpid())
    return {"host": HOST, "pid": os.getpid(), "start": stat[1] if stat else None}


def process_alive(pid: int, start: str | None = None) -> bool:
    """Is process `pid` (started at `start`, guarding against pid reuse) alive on this machine?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, started = stat
    if state in ("Z", "X"):  # killed but not yet reaped by its parent
        return False
    return start is None or started == start
