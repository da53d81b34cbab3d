"""Shared test helpers: tiny experiments, the real CLI in a subprocess, and the stores read back."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from mlflow import MlflowClient

from augsweep.experiment import Experiment, load_experiment
from augsweep.stores.study import Stores, resolve_stores

ROOT = Path(__file__).resolve().parents[1]


def tiny_experiment(**overrides) -> dict:
    """A synthetic experiment that trains in about a second per trial."""
    exp = {
        "name": "tiny",
        "dataset": {"source": "synthetic", "image_size": [16, 16], "samples": 96},
        "search_space": {
            "depth": {"low": 1, "high": 2},
            "augmentations": {"flip": {"mode": ["horizontal"]}, "contrast": {"factor": [0.1, 0.5]}},
        },
        "train": {"epochs": 2, "batch_size": 32, "learning_rate": 0.003},
        "trials": 3,
        "repeats": 1,
        "sampler": "random",
        "pruner": "none",
        "seed": 0,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(exp.get(key), dict):
            exp[key] = {**exp[key], **value}
        else:
            exp[key] = value
    return exp


# A tiny experiment whose network clearly learns (every training ends well below ln 10): 100 of scikit-learn's
# digits at their native 8x8, 6 epochs. `tiny_experiment`'s synthetic silhouettes stay at chance in 2 epochs, so
# the report withholds its verdicts, its block and its model; tests of those use this one.
LEARNS = {"dataset": {"source": "digits", "image_size": [8, 8], "train_samples": 100, "val_samples": 100},
          "train": {"epochs": 6, "batch_size": 8, "learning_rate": 0.01}}


def learning_experiment(**overrides) -> dict:
    """`tiny_experiment` on data and a budget where the network learns (about a second per training)."""
    merged = {**LEARNS, **overrides}
    for key in ("dataset", "train"):
        if key in overrides:
            merged[key] = {**LEARNS[key], **overrides[key]}
    return tiny_experiment(**merged)


def cli_command(script: str) -> tuple[list[str], dict]:
    """The command line and extra environment of `sweep.py`/`report.py` or of an `augsweep` verb (`python -m
    augsweep VERB`, this checkout's package first on the path, from whatever folder it runs in)."""
    if script.endswith(".py"):
        return [sys.executable, str(ROOT / script)], {}
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return [sys.executable, "-m", "augsweep", script], {"PYTHONPATH": path}


def run_cli(script: str, *args, cwd: Path | None = None, timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    """Run `python sweep.py|report.py ARGS` or `augsweep VERB ARGS` (`script` a verb) as a real process."""
    command, extra_env = cli_command(script)
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **extra_env, **(env or {})}
    return subprocess.run(
        [*command, *map(str, args)],
        cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout, env=full_env,
    )


def copy_stores(src: Path, dst: Path) -> None:
    """`src`'s stores copied to `dst`, their artifacts included, as stores of their own: MLflow records absolute
    artifact paths, so a plain copy's runs would still read and write `src`'s files (which still exist, so the
    copy is not a moved store); the copy's experiment and runs are pointed at its own artifact folder."""
    shutil.copytree(src, dst)
    old, new = (src / "artifacts").resolve().as_uri(), (dst / "artifacts").resolve().as_uri()
    with contextlib.closing(sqlite3.connect(dst / "mlflow.db")) as db, db:
        db.execute("update experiments set artifact_location = replace(artifact_location, ?, ?)", (old, new))
        db.execute("update runs set artifact_uri = replace(artifact_uri, ?, ?)", (old, new))


def jax_without_tensorflow(folder: Path) -> dict:
    """The environment of a process on Keras's JAX backend where TensorFlow cannot be imported, as on a GPU machine
    that has JAX only: a `tensorflow` package first on the path whose import fails."""
    hidden = folder / "no-tensorflow" / "tensorflow"
    hidden.mkdir(parents=True, exist_ok=True)
    (hidden / "__init__.py").write_text('raise ImportError("TensorFlow is not installed here")\n')
    path = os.pathsep.join(p for p in (str(hidden.parent), os.environ.get("PYTHONPATH", "")) if p)
    return {"KERAS_BACKEND": "jax", "PYTHONPATH": path}


def run_in_process(script: str, *args, cwd: Path | None = None, env=None) -> subprocess.CompletedProcess:
    """`run_cli` without a new interpreter: the same entry function the script or verb calls (`sweep_main`,
    `report_main`, `augsweep.cli.main`), its exit code and what it printed to stdout and stderr. For claims about
    what the tool answers, not about the process (a fresh interpreter, signals, what it imports)."""
    import io

    from augsweep.cli import main, report_main, sweep_main

    argv = [*map(str, args)]
    call = {"sweep.py": lambda: sweep_main(argv), "report.py": lambda: report_main(argv)}.get(
        script, lambda: main([script, *argv]))
    out, err = io.StringIO(), io.StringIO()
    saved_cwd, saved_env = Path.cwd(), {k: os.environ.get(k) for k in (env or {})}
    try:
        os.environ.update(env or {})
        os.chdir(cwd or ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = call()
    finally:
        os.chdir(saved_cwd)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess([script, *argv], code, out.getvalue(), err.getvalue())


def experiment(path_or_exp) -> Experiment:
    return path_or_exp if isinstance(path_or_exp, Experiment) else load_experiment(path_or_exp)


def stores(path_or_exp, mlruns) -> Stores:
    """The embedded stores of an experiment under `mlruns`."""
    return resolve_stores(experiment(path_or_exp), mlruns)


@dataclass
class StoresView:
    """What a test reads back from the real stores."""

    study: object
    client: MlflowClient
    runs: list

    @property
    def trials(self):
        return self.study.trials

    @property
    def by_id(self) -> dict:
        return {r.info.run_id: r for r in self.runs}

    @property
    def trial_runs(self) -> list:
        return [r for r in self.runs if r.data.tags.get("kind") == "trial"]


def read_stores(path_or_exp, mlruns) -> StoresView:
    """The study and every MLflow run of the experiment, read back from the real stores."""
    exp = experiment(path_or_exp)
    s = resolve_stores(exp, mlruns)
    study = optuna.load_study(study_name=s.study_name, storage=s.storage_url)
    client = MlflowClient(s.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(exp.name).experiment_id], max_results=5000)
    return StoresView(study, client, runs)


def sweep(path_or_exp, mlruns, trials: int | None = None, echo=lambda line: None, members=1):
    """`run_sweep` on the embedded stores under `mlruns` (`members`: `--members`, one training at a time by
    default)."""
    from augsweep.runs.sweep import run_sweep

    exp = experiment(path_or_exp)
    return run_sweep(exp, resolve_stores(exp, mlruns), trials=trials, echo=echo, members=members)


def ablate(path_or_exp, mlruns, repeats: int | None = None, echo=lambda line: None):
    """`run_ablation` on the embedded stores under `mlruns`."""
    from augsweep.runs.ablation import run_ablation

    exp = experiment(path_or_exp)
    return run_ablation(exp, resolve_stores(exp, mlruns), repeats=repeats, echo=echo)


def report(path_or_exp, mlruns, out):
    """`write_report` of the embedded stores under `mlruns` into `out`."""
    from augsweep.report.write import write_report

    exp = experiment(path_or_exp)
    return write_report(exp, resolve_stores(exp, mlruns), out)


def reproduce(path_or_exp, mlruns, target: str, echo=lambda line: None):
    """`--reproduce TARGET` in-process; its `Reproduction` (`.worst`, `.verdict`, `.ok`)."""
    from augsweep.runs.reproduce import reproduce as run

    exp = experiment(path_or_exp)
    return run(exp, resolve_stores(exp, mlruns), target, echo=echo)


def wait_for_study(proc: subprocess.Popen, db: Path, query: str, at_least: int = 1, deadline_s: float = 300) -> None:
    """Poll the Optuna SQLite file of a running sweep process until `query` (a count) reaches `at_least`.
    Nothing asserts on time: the deadline only turns a hang into a failure."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=30) as con:
                    n = con.execute(query).fetchone()[0]
            except sqlite3.OperationalError:  # tables not created yet
                n = 0
            if n >= at_least:
                return
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the sweep never got there: {query}")


def markdown_tables(md: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every table of a Markdown report: (header, rows of cells)."""
    tables, block = [], []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif block:
            tables.append((block[0], block[2:]))  # block[1] is the |---| line
            block = []
    return tables


def untidy(md: str) -> list[str]:
    """What a tidy report never holds: a table column (other than the first, which names the rows) that reads the
    same in every row of two or more, and a section with nothing under its heading, or only a placeholder."""
    found = [f"{header[i]} in the table of {header}" for header, rows in markdown_tables(md) if len(rows) > 1
             for i in range(1, len(header)) if len({row[i] for row in rows}) == 1]
    for section in md.split("\n## ")[1:]:
        title, _, body = section.partition("\n")
        if not body.strip() or any(p in body for p in ("No such pairs", "not available", "No baseline finished")):
            found.append(f"empty section {title!r}")
    return found


def assert_tables_and_figures_fit(page) -> None:
    """report.html as a Playwright `page` shows it: no table wider than the page's column, no table column (but
    the first) that reads the same in every row, every figure at its natural size (its text as `plots` drew it)."""
    tables = page.evaluate("""() => [...document.querySelectorAll('table')].map(t => ({
        right: t.getBoundingClientRect().right, column: document.body.getBoundingClientRect().right,
        header: [...t.querySelectorAll('th')].map(th => th.innerText.trim()),
        rows: [...t.querySelectorAll('tbody tr')].map(tr => [...tr.cells].map(td => td.innerText.trim()))}))""")
    assert tables
    for t in tables:
        assert t["right"] <= min(t["column"], page.viewport_size["width"]), t
        if len(t["rows"]) > 1:
            same = [h for i, h in enumerate(t["header"]) if i and len({r[i] for r in t["rows"]}) == 1]
            assert not same, (t["header"], same)
    images = page.evaluate("() => [...document.images].map(i => [i.alt, i.clientWidth, i.naturalWidth])")
    assert images and all(shown == natural for _, shown, natural in images), images


@contextlib.contextmanager
def failing_augmentation(name: str, message: str, build: int = 2):
    """For the block: augmentation `name` registered (the identity, no parameters) whose `build`-th construction
    raises RuntimeError(message); unregistered after."""
    from augsweep import augment

    built = [0]

    def make(params, seed):
        built[0] += 1
        if built[0] == build:
            raise RuntimeError(message)
        import keras

        return keras.layers.Identity()

    augment.register(augment.AugmentationSpec(name, {}, make))
    try:
        yield
    finally:
        augment.unregister(name)
