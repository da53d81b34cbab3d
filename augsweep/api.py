"""The Python API for notebooks and scripts: `load_experiment`, `sweep`, `report`.

The same functions as the command lines (`augsweep.cli` -> `experiment.load`, `runs.sweep`, `report.write`),
with the same errors: bad input raises `augsweep.UserError` (a `ValueError`; the CLI prints it as its one
line and exits 2), never `SystemExit`. Heavy modules (TensorFlow, MLflow, Optuna) load on first use.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import arguments
from .runtime import UserError


def _user_errors(function):
    """`function` with its arguments bound first: a missing, unknown or extra argument raises `UserError`
    (one line) like every other bad argument, instead of Python's `TypeError`."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def checked(*args, **kwargs):
        try:
            signature.bind(*args, **kwargs)
        except TypeError as e:
            raise UserError(f"{function.__name__}(): {e}. See help(augsweep.{function.__name__})") from None
        return function(*args, **kwargs)

    return checked


@_user_errors
def load_experiment(path_or_dict: str | Path | Mapping[str, Any]):
    """Read and validate an experiment, as `sweep.py` and `report.py` do.

    Args:
        path_or_dict: an experiment YAML file, or the same keys as a dict (written to
            `.augsweep/<name>.yaml` in the current folder, so that every printed command names a file).

    Returns:
        The validated `Experiment` (frozen dataclass: `name`, `dataset`, `search_space`, `train`, ...).

    Raises:
        UserError: the file is missing or a key or value is invalid (the message names it).

    Example:

    ```python
    exp = augsweep.load_experiment("experiments/synthetic.yaml")
    exp = augsweep.load_experiment({"name": "mine", "dataset": {"source": "digits", "image_size": [16, 16]},
                                    "search_space": {"augmentations": {"flip": {}}}})
    ```
    """
    from .verbs import experiment_of

    return experiment_of(path_or_dict)


@dataclass
class Study:
    """What `sweep` ran: the Optuna study name, trial counts and the best distinct configurations."""

    name: str
    finished: int
    budget: int
    ran_now: int
    best: list = field(default_factory=list)  # (configuration label, mean best val_loss, trials) best first
    parent_run_id: str = ""
    mlruns: str = "mlruns"

    def _repr_html_(self) -> str:
        import html

        rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{m:.4f}</td><td>{n}</td></tr>" for c, m, n in self.best)
        return (f"<p>Study <b>{html.escape(self.name)}</b>: {self.finished}/{self.budget} trials finished "
                f"({self.ran_now} run now).</p><table><tr><th>configuration</th><th>mean best val_loss</th>"
                f"<th>trials</th></tr>{rows}</table>")


def _bar_echo(total: int):
    """`echo` for the sweep: a tqdm bar over trials (tqdm's notebook bar in Jupyter), other lines printed."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="trials", unit="trial")
    trial_line = re.compile(r"^\[\s*(\d+)/(\d+)\] (t\d+)")

    def echo(line: str) -> None:
        m = trial_line.match(line)
        if m:
            bar.n = min(int(m.group(1)), total)
            bar.set_postfix_str(line.split("  ")[1] if "  " in line else "", refresh=False)
            bar.refresh()
        else:
            bar.write(line)

    return echo, bar


@_user_errors
def sweep(exp, trials: int | None = None, *, mlruns: str | Path = "mlruns", storage: str | None = None,
          tracking_uri: str | None = None, study_name: str | None = None, progress: bool = True,
          workers: int | str = 1, members: int | str = 1) -> Study:
    """Run (or resume) a sweep until `trials` trials have finished in total, as `sweep.py` does.

    Args:
        exp: an `Experiment`, a path to its YAML file, or a dict (see `load_experiment`).
        trials: finished trials wanted in total (default: the experiment's `trials`).
        mlruns: root of the embedded stores (MLflow SQLite + artifacts, Optuna study).
        storage: an Optuna storage URL instead of the embedded one (e.g. `postgresql+psycopg://...`).
        tracking_uri: an MLflow tracking URI instead of the embedded one (e.g. `http://host:5000`).
        study_name: the Optuna study's name (default: the experiment's `name`).
        progress: show a bar over trials (tqdm's notebook bar in Jupyter); False prints nothing.
        workers: worker processes, as `sweep.py --workers`: 1 (this process), N, or `"auto"` (one per CPU
            core, GPUs by free memory). Workers print their own progress lines (to the terminal the notebook
            server runs in); the bar then moves when the sweep ends.
        members: trainings per compiled program, as `sweep.py --members`: 1 (one at a time), N (branches; N above
            the repeats R also trains ceil(N/R)-1 queued design points of the trial's block in its program:
            `runs.cotrain`), or `"auto"` (on TensorFlow a factorial block's points of one depth as one stacked
            program: `runs.members.auto_members`).

    Returns:
        A `Study` with the counts and the best distinct configurations by their mean.

    Raises:
        UserError: bad input (experiment, stores, URLs), before anything is trained.
        RuntimeError: the sweep stopped on repeated failures (`runs.sweep.SweepAborted`).

    Example:

    ```python
    study = augsweep.sweep("experiments/synthetic.yaml", trials=4, mlruns="/tmp/mlruns")
    study.best[0]  # ('d1 flip', 0.61, 2)
    ```
    """
    arguments.boolean(progress, "progress")
    from . import verbs

    shown = {"echo": None, "bar": None}

    def start(budget: int) -> None:  # called once the arguments and stores are checked
        if progress:
            shown["echo"], shown["bar"] = _bar_echo(budget)

    def echo(line: str) -> None:
        if shown["echo"] is not None:
            shown["echo"](line)

    try:
        outcome = verbs.sweep(exp, trials=trials, workers=workers, members=members, mlruns=mlruns, storage=storage,
                              tracking_uri=tracking_uri, study_name=study_name, echo=echo, start=start).outcome
    finally:
        if shown["bar"] is not None:
            shown["bar"].close()
    from .experiment.space import TrialConfig
    from .stores.records import CONFIG

    best = [(TrialConfig.from_flat(t.user_attrs[CONFIG]).label(), float(mean), int(n)) for t, mean, n in outcome.best]
    return Study(outcome.study_name, outcome.finished, outcome.budget, outcome.ran_now, best,
                 outcome.parent_run_id, str(mlruns))


@dataclass
class Report:
    """A written report: the answer, the effects, the best configuration and the augmentation block."""

    out_dir: Path
    answer: str  # the report's answer paragraph (Markdown)
    effects: Any  # pandas DataFrame of effects.csv
    best: Any  # `report.export.Recommendation` (the recommended configuration and its best seed) or None
    model_version: Any = None  # the registered `<study>-best` MLflow model version, or None
    notes: tuple = ()  # why no block was written or no model registered (e.g. stores older than model.keras)
    next_steps: tuple = ()  # the report's `Next:` lines (Markdown): the block, the registered model, what to run

    def augmentation_block(self):
        """The recommended augmentation block as a `keras.Sequential` (loads `augmentation.keras`).

        Returns:
            The block: seeded Keras preprocessing layers, active only in training.

        Raises:
            UserError: the report wrote no block (no finished trial, or stores older than the block).

        Example:

        ```python
        block = augsweep.report("experiments/synthetic.yaml").augmentation_block()
        model = keras.Sequential([block, *my_layers])
        ```
        """
        path = self.out_dir / "augmentation.keras"
        if not path.is_file():
            raise UserError(f"the report wrote no augmentation block. Received: out={str(self.out_dir)!r}")
        import keras

        from .augment import standalone  # noqa: F401 - registers the layers augmentation.py defines
        from .augment.layers import layer_classes

        layer_classes()  # registers augsweep's own layers (crop, mirror), which blocks written by older versions hold
        return keras.saving.load_model(path)

    def _repr_html_(self) -> str:
        import base64
        import html

        from .report.render import display, inline_md

        forest = self.out_dir / "effects_forest.png"
        img = (f'<img style="max-width:100%" src="data:image/png;base64,'
               f'{base64.b64encode(forest.read_bytes()).decode()}" alt="forest plot of the effects">'
               if forest.is_file() else "")
        paragraphs = "".join(f"<p>{inline_md(p)}</p>" for p in self.answer.split("\n\n") if p)
        table = display(self.effects[["augmentation", "effect", "ci_low", "ci_high", "verdict"]]).to_html(
            index=False)
        steps = "".join(f"<p>{inline_md(line)}</p>" for line in self.next_steps)
        notes = "".join(f"<p><b>note:</b> {html.escape(n)}</p>" for n in self.notes)
        return f"<div>{paragraphs}{steps}{notes}{img}{table}</div>"


@_user_errors
def report(exp, *, mlruns: str | Path = "mlruns", out: str | Path | None = None, storage: str | None = None,
           tracking_uri: str | None = None, study_name: str | None = None) -> Report:
    """Write the report from the stores (never retrains), as `report.py` does.

    Writes `report.md`, `report.html`, `effects.csv`, the CSVs and figures, and the recommended augmentation
    block (`augmentation.py`, `augmentation.keras`) into `out`; registers the best model in MLflow as
    `<study>-best` and puts the answer on the experiment's page.

    Args:
        exp: an `Experiment`, a path to its YAML file, or a dict (see `load_experiment`).
        mlruns: root of the embedded stores the sweep wrote.
        out: output folder (default: `reports/<study>/`).
        storage: the Optuna storage URL the sweep used, if not the embedded one.
        tracking_uri: the MLflow tracking URI the sweep used, if not the embedded one.
        study_name: the Optuna study's name (default: the experiment's `name`).

    Returns:
        A `Report` with `.answer`, `.effects`, `.best`, `.augmentation_block()` and `.notes` (why no block was
        written or no model registered, if so); in a notebook it shows the answer, the notes and the forest
        plot.

    Raises:
        UserError: no stores, a bad `out`, bad input.

    Example:

    ```python
    rep = augsweep.report("experiments/synthetic.yaml", mlruns="/tmp/mlruns")
    print(rep.answer)
    rep.effects  # DataFrame of effects.csv
    ```
    """
    from . import verbs

    written = verbs.report(exp, mlruns=mlruns, out=out, storage=storage, tracking_uri=tracking_uri,
                           study_name=study_name)
    published = written.published
    return Report(Path(written.out_dir), written.answer, written.effects,
                  published.recommendation if published is not None else None,
                  published.model_version if published is not None else None,
                  tuple(published.notes) if published is not None else (), tuple(written.next_steps))
