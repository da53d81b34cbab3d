"""Follow-up commands the tool prints, written so that they run as printed from the repository root in a fresh
shell (`make …` where the Makefile's defaults allow it, else the interpreter's path)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

MAKE_DEFAULTS = {"EXP": "experiments/default.yaml", "MLRUNS": "mlruns"}  # the Makefile's defaults


def _in_project_venv() -> bool:
    """This process runs the project's own `.venv` from its repository root (where the Makefile is)."""
    here = Path.cwd()
    try:
        return (here / "Makefile").is_file() and Path(sys.prefix).resolve() == (here / ".venv").resolve()
    except OSError:
        return False


def python_path() -> str:
    """The interpreter running augsweep as a fresh shell can call it: `.venv/bin/python` (relative to the
    current directory when below it), never a bare `python` (a shell without the venv activated finds
    another one, without the project's packages)."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def _make_safe(value: str) -> bool:
    return bool(value) and not any(c in value for c in " \t'\"$#%:=\\;&|<>()*?[]")


def follow_up(script: str, experiment: str, mlruns: str | Path | None = None, store_options: str = "",
              *extra: str) -> str:
    """A command that runs as printed from the repository root in a fresh shell (no venv activated).

    `make sweep|ablate|report EXP=… MLRUNS=… [TRIALS=N] [REPEATS=R]` when this is the project's `.venv` and
    the stores are the embedded ones (`store_options` empty: no --storage, --tracking-uri or --study-name);
    otherwise the interpreter's path, e.g. `.venv/bin/python report.py EXP --mlruns DIR …`."""
    import shlex

    extra = tuple(str(e) for e in extra)
    target, variables = None, {"EXP": str(experiment), "MLRUNS": None if mlruns is None else str(mlruns)}
    if script == "report.py" and not extra:
        target = "report"
    elif script == "sweep.py" and not extra:
        target = "sweep"
    elif script == "sweep.py" and len(extra) == 2 and extra[0] == "--trials":
        target, variables["TRIALS"] = "sweep", extra[1]
    elif script == "sweep.py" and extra[:1] == ("--ablation",) and (len(extra) == 1 or (
            len(extra) == 3 and extra[1] == "--repeats")):
        target = "ablate"
        if len(extra) == 3:
            variables["REPEATS"] = extra[2]
    values = {k: v for k, v in variables.items() if v is not None and v != MAKE_DEFAULTS.get(k)}
    if target and not store_options and _in_project_venv() and all(map(_make_safe, values.values())):
        return " ".join(["make", target, *(f"{k}={v}" for k, v in values.items())])
    words = [shlex.quote(python_path()), script, shlex.quote(str(experiment))]
    if mlruns is not None:
        words += ["--mlruns", shlex.quote(str(mlruns))]
    return " ".join([*words, *([store_options] if store_options else []), *map(shlex.quote, extra)])


@dataclass(frozen=True)
class FollowUp:
    """How follow-up commands on one experiment's stores are written (`follow_up` with these stores' options),
    as a value: words about a report name commands without knowing where the stores are."""

    experiment: str
    mlruns: str | None = None
    store_options: str = ""

    def __call__(self, script: str, *extra) -> str:
        return follow_up(script, self.experiment, self.mlruns, self.store_options, *extra)
