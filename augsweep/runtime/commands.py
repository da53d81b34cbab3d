"""Follow-up commands the tool prints, written so that they run as printed in a fresh shell from the folder the
user ran in (`make …` from the repository root where the Makefile's defaults allow it, else the `augsweep` verb by
the installed command's path)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

MAKE_DEFAULTS = {"EXP": "experiments/default.yaml", "MLRUNS": "mlruns"}  # the Makefile's defaults


def in_project_venv() -> bool:
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


def augsweep_command() -> str:
    """The installed `augsweep` command as a fresh shell can call it: the console script next to the interpreter
    (relative to the current directory when below it, else absolute), or `PYTHON -m augsweep` where it is not
    installed as a script."""
    import shlex

    exe = Path(sys.executable)
    script = exe.with_name("augsweep")
    if script.is_file():
        try:
            return shlex.quote(str(script.relative_to(Path.cwd())))
        except ValueError:
            return shlex.quote(str(script))
    return f"{shlex.quote(python_path())} -m augsweep"


# `sweep.py`'s mode flags and the verbs that replaced them (`augsweep VERB`).
_MODE_VERBS = {"--ablation": "ablate", "--reproduce": "reproduce", "--repair": "repair", "--worker": "worker"}


def verb_of(script: str, extra: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(`augsweep` verb, its remaining arguments) for a `sweep.py`/`report.py` command line's words."""
    if script in ("report.py", "report"):
        return "report", extra
    for flag, verb in _MODE_VERBS.items():
        if flag in extra:
            return verb, tuple(e for e in extra if e != flag)
    return script.removesuffix(".py"), extra


def follow_up(script: str, experiment: str, mlruns: str | Path | None = None, store_options: str = "",
              *extra: str) -> str:
    """A command that runs as printed in a fresh shell (no venv activated), from the folder the user ran in.

    `make sweep|ablate|report EXP=… MLRUNS=… [TRIALS=N] [REPEATS=R]` when this is the project's `.venv` run from
    its repository root and the stores are the embedded ones (`store_options` empty: no --storage, --tracking-uri
    or --study-name); otherwise the `augsweep` verb, e.g. `.venv/bin/augsweep report EXP --mlruns DIR …` (by its
    absolute path outside the repository). `script` is `sweep.py`/`report.py` with their old mode flags in
    `extra` (`--ablation`, `--reproduce X`, ...) or a verb."""
    import shlex

    extra = tuple(str(e) for e in extra)
    verb, rest = verb_of(script, extra)
    target, variables = None, {"EXP": str(experiment), "MLRUNS": None if mlruns is None else str(mlruns)}
    if verb == "report" and not rest:
        target = "report"
    elif verb == "sweep" and not rest:
        target = "sweep"
    elif verb == "sweep" and len(rest) == 2 and rest[0] == "--trials":
        target, variables["TRIALS"] = "sweep", rest[1]
    elif verb == "ablate" and (not rest or (len(rest) == 2 and rest[0] == "--repeats")):
        target = "ablate"
        if rest:
            variables["REPEATS"] = rest[1]
    values = {k: v for k, v in variables.items() if v is not None and v != MAKE_DEFAULTS.get(k)}
    if target and not store_options and in_project_venv() and all(map(_make_safe, values.values())):
        return " ".join(["make", target, *(f"{k}={v}" for k, v in values.items())])
    words = [augsweep_command(), verb, shlex.quote(str(experiment))]
    if verb == "reproduce" and rest:  # the trial or variant is the verb's second positional argument
        words.append(shlex.quote(rest[0]))
        rest = rest[1:]
    if mlruns is not None:
        words += ["--mlruns", shlex.quote(str(mlruns))]
    return " ".join([*words, *([store_options] if store_options else []), *map(shlex.quote, rest)])


@dataclass(frozen=True)
class FollowUp:
    """How follow-up commands on one experiment's stores are written (`follow_up` with these stores' options),
    as a value: words about a report name commands without knowing where the stores are."""

    experiment: str
    mlruns: str | None = None
    store_options: str = ""

    def __call__(self, script: str, *extra) -> str:
        return follow_up(script, self.experiment, self.mlruns, self.store_options, *extra)
