"""The arguments every entry point takes, checked by one set of functions: the command lines (`cli`) and the
Python API (`api`) call the same checks, so `--trials 2.5` and `sweep(..., trials=2.5)` are refused alike.

Each check returns the value to use, or raises `UserError` with one line that names the argument, what it
must be and what was received (cut short by `runtime.shown`). Nothing here writes or imports a heavy module.
"""

from __future__ import annotations

import numbers
import os
import re
from pathlib import Path
from typing import Any

from .experiment.keys import TABLE
from .runtime import UserError, shown, usable_cores

MAX_TRIALS = TABLE["trials"].high  # the same caps as the experiment file's keys
MAX_REPEATS = TABLE["ablation.repeats"].high
WORKERS_PER_CORE = 2  # `--workers N`: at most this many worker processes per usable CPU core
MAX_PATH_CHARS = 4096  # Linux's PATH_MAX; one component at most NAME_MAX bytes
NAME_MAX = 255
MAX_URL_CHARS = 2000
PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"))  # the kernel's views: nothing can be stored there


def _integer(value: Any, what: str, low: int, high: int, text: bool) -> int:
    """An integer in [low, high]: an int, or with `text` (the command line's) a string of digits."""
    rule = f"{what} must be an integer in [{low}, {high}]. Received: {shown(value)}"
    if isinstance(value, str) and text:
        digits = value.strip()
        if not re.fullmatch(r"\+?[0-9]{1,20}", digits, re.ASCII):
            raise UserError(rule)
        value = int(digits)
    elif isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(rule)
    if not low <= int(value) <= high:
        raise UserError(rule)
    return int(value)


def trials(value: Any, what: str = "trials", text: bool = False) -> int | None:
    """Finished trials wanted in total: None (the file's `trials`) or an integer in [1, MAX_TRIALS] (`text`: the
    command line's digits too)."""
    return None if value is None else _integer(value, what, 1, MAX_TRIALS, text)


def repeats(value: Any, what: str = "repeats", text: bool = False) -> int | None:
    """An ablation's seeds per variant: None (the file's) or an integer in [1, MAX_REPEATS]."""
    return None if value is None else _integer(value, what, 1, MAX_REPEATS, text)


def max_workers() -> int:
    """The most worker processes `--workers` may start: `WORKERS_PER_CORE` per usable core."""
    return WORKERS_PER_CORE * usable_cores()


def workers(value: Any, what: str = "workers", text: bool = False) -> int | str:
    """`auto`, or an integer in [1, max_workers()] (each worker is a TensorFlow process of about 1 GiB)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    cap = max_workers()
    try:
        return _integer(value, what, 1, cap, text)
    except UserError:
        raise UserError(f"{what} must be an integer in [1, {cap}] ({WORKERS_PER_CORE} per usable CPU core, "
                        f"{usable_cores()} here) or auto. Received: {shown(value)}") from None


MAX_MEMBERS = 1024  # `--members N`: trainings per program (above a trial's repeats: several design points)


def members(value: Any, what: str = "members", text: bool = False) -> int | str:
    """`auto`, or an integer in [1, MAX_MEMBERS]: trainings per program (`runs.members`)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return _integer(value, what, 1, MAX_MEMBERS, text)
    except UserError:
        raise UserError(f"{what} must be an integer in [1, {MAX_MEMBERS}] or auto. Received: {shown(value)}") from None


def study_name(value: Any, what: str = "--study-name") -> str | None:
    """None (the experiment's name) or a name that is also a safe folder name (reports/<name>/)."""
    if value is None:
        return None
    from .experiment.load import NAME_RULE, is_safe_name

    if not isinstance(value, str) or not is_safe_name(value):
        raise UserError(f"{what} {NAME_RULE}. Received: {shown(value)}")
    return value


def _path_text(value: Any, what: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes) or not isinstance(value, str):
        raise UserError(f"{what} must be a folder path (a string). Received: {shown(value)}")
    if not value.strip():
        raise UserError(f"{what} must name a folder; an empty value (an unset variable?) would mean the current "
                        f"folder. Received: {shown(value)}")
    if "\0" in value or not value.isprintable():
        raise UserError(f"{what} holds a NUL byte or another unprintable character. Received: {shown(value)}")
    if len(value) > MAX_PATH_CHARS or any(len(part.encode()) > NAME_MAX for part in Path(value).parts):
        raise UserError(f"{what} is too long for a path ({MAX_PATH_CHARS} characters, {NAME_MAX} bytes per "
                        f"folder name at most). Received: {len(value)} characters")
    return value


def mlruns(value: Any, what: str = "--mlruns") -> Path:
    """The root of the embedded stores: a folder path, not empty, not `/`, not under /proc or /sys."""
    path = Path(_path_text(value, what))
    resolved = path.resolve()
    if resolved == Path(resolved.anchor):
        raise UserError(f"{what} must not be the filesystem root (the stores would be written into /). "
                        f"Received: {shown(str(value))}")
    if any(resolved == p or p in resolved.parents for p in PSEUDO_FILESYSTEMS):
        raise UserError(f"{what} is under /proc or /sys, where nothing can be stored. Received: {shown(str(value))}")
    return path


def out(value: Any, what: str = "--out") -> Path | None:
    """The report's folder: None (reports/<study>/) or a folder path, not empty and not `/`."""
    if value is None:
        return None
    return mlruns(value, what)


def url(value: Any, what: str) -> str | None:
    """A store URL: None (the embedded store) or a string whose password can never be printed (`urls`)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise UserError(f"{what} must be a URL (a string). Received: {type(value).__name__}")
    if not value.strip():
        raise UserError(f"{what} is empty (an unset variable?); leave it out for the embedded store")
    if len(value) > MAX_URL_CHARS or not value.isprintable():
        raise UserError(f"{what} must be one printable line of at most {MAX_URL_CHARS} characters. "
                        f"Received: {len(value)} characters")
    from .stores.urls import check_userinfo

    check_userinfo(value, what)
    return value


def reproduce(value: Any, what: str = "--reproduce") -> str | None:
    """`--reproduce TRIAL|VARIANT`: None, or a trial number or variant name that is not empty."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{what} needs a trial number or an ablation variant name; an empty value (an unset "
                        f"variable?) would run the sweep instead. Received: {shown(value)}")
    if len(value) > 200 or not value.isprintable():
        raise UserError(f"{what} must be a trial number or a variant name. Received: {shown(value)}")
    return value


def boolean(value: Any, what: str) -> bool:
    """A flag: True or False only (not a truthy string)."""
    if not isinstance(value, bool):
        raise UserError(f"{what} must be True or False. Received: {shown(value)}")
    return value


def in_memory(storage: str | None) -> bool:
    """An Optuna storage URL whose study lives only in this process's memory."""
    if not storage:
        return False
    text = storage.strip().lower()
    return text in ("sqlite://", "sqlite:///") or text.startswith(("sqlite:///:memory:", "sqlite://?"))


def storage_for_workers(storage: str | None, count: int | str, peer: bool = False,
                        names: tuple[str, str] = ("storage", "workers")) -> None:
    """An in-memory storage (`sqlite:///:memory:`) is one process's alone: refused with workers other than 1
    and with `--worker` (each process would run the whole budget on its own copy of the study)."""
    if in_memory(storage) and (count != 1 or peer):
        where = "--worker" if peer else f"{names[1]}={count}"
        raise UserError(f"{names[0]} {storage} keeps the study in one process's memory, so workers cannot share "
                        f"it; leave {names[0]} out (the embedded store) or give a database URL. Received: {where}")
