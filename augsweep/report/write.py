"""The report's entry point, one way through: load everything from the stores once (`load`), analyse it
(`analysis`, pure), draw the figures, export the augmentation block and register the best model (`publish`),
put it in words (`words`), render Markdown, HTML and CSV (`render`), and publish the answer to MLflow. Nothing
after the load step reads the stores, and nothing is parsed back out of rendered text."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..experiment.schema import ConfigError, Experiment
from ..stores.run_files import local_folder, moved_from, relocated
from ..stores.study import Stores
from ..stores.tracking import check_artifacts_inside, client_for
from .analysis import ReportAnalysis, analyse_report
from .figures import report_figures
from .load import load_report
from .render import display, to_html, to_markdown
from .sweep_analysis import FLOAT, Analysis
from .words import report_words

# Every file the report writes (nothing else in --out is ever uploaded: the folder may hold anything).
REPORT_FILES = ("report.md", "report.html", "effects.csv", "effects_by_budget.csv", "configurations.csv",
                "effects_forest.png", "effect_vs_budget.png", "curves_by_augmentation.png", "train_vs_val.png",
                "optimization_history.png", "ablation_curves.png", "affinity_diversity.png",
                "augmentation.py", "augmentation.keras")


def check_out(out: str | Path, stores: Stores) -> Path:
    """`--out` is a folder (or can be made) that neither is, contains, nor lies inside the embedded stores."""
    out_dir = Path(out)
    for folder in (out_dir, *out_dir.parents):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"--out must be a folder, but {folder} is a file. Received: out={str(out)!r}")
    if stores.embedded_study or stores.embedded_tracking:
        here, mlruns = out_dir.resolve(), stores.mlruns.resolve()
        if here == mlruns or here in mlruns.parents or mlruns in here.parents:
            relation = "is" if here == mlruns else "contains" if here in mlruns.parents else "is inside"
            raise ConfigError(f"--out {relation} the stores' folder {stores.mlruns}: a report is written beside "
                              f"the stores, never into them (default: reports/<study>/). Received: out={str(out)!r}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out cannot be created: {e.strerror}. Received: out={str(out)!r}") from None
    return out_dir


def write_report(exp: Experiment, stores: Stores, out: str | Path | None = None) -> tuple[Path, Analysis | None]:
    """Read the stores, analyse the sweep and/or the latest ablation, and write report.md, report.html,
    effects.csv and PNGs into `out`. Returns the folder and the sweep's analysis (None without a sweep)."""
    written = write(exp, stores, out)
    return written.out_dir, written.analysis


@dataclass(frozen=True)
class Written:
    """What a report concluded and wrote: its folder, the sweep's analysis, the answer paragraph, the effects,
    what was published (the augmentation block, the registered model: `publish.Published`) and the answer's
    `Next:` lines, each a value of its own (never read back from the files)."""

    out_dir: Path
    analysis: Analysis | None
    answer: str
    effects: pd.DataFrame
    published: object = None
    next_steps: tuple = ()  # the answer's `Next:` lines, as the report says them

    @property
    def recommendation(self):
        """The recommended configuration (`export.Recommendation`), or None."""
        return getattr(self.published, "recommendation", None)


def write_tables(result: ReportAnalysis, out_dir: Path) -> None:
    """`effects.csv`, and with a sweep `effects_by_budget.csv` and `configurations.csv`."""
    result.effects.to_csv(out_dir / "effects.csv", index=False, float_format=FLOAT)
    analysis = result.sweep
    if analysis is not None:
        from .budget import BUDGET_COLUMNS
        from .configurations import CONFIG_COLUMNS

        by_budget = analysis.by_budget if analysis.by_budget is not None else pd.DataFrame(columns=BUDGET_COLUMNS)
        by_budget[BUDGET_COLUMNS].to_csv(out_dir / "effects_by_budget.csv", index=False, float_format=FLOAT)
        configs = (analysis.configurations if analysis.configurations is not None
                   else pd.DataFrame(columns=CONFIG_COLUMNS))
        configs[CONFIG_COLUMNS].to_csv(out_dir / "configurations.csv", index=False, float_format=FLOAT)


def write(exp: Experiment, stores: Stores, out: str | Path | None = None) -> Written:
    """`write_report`, returning everything the API shows (`Written`); also writes the augmentation block,
    registers the best model and sets the experiment's description (`publish`).

    Embedded stores that moved are read by their relative layout (`run_files.relocated`); their runs still name
    the old folder, so nothing is uploaded to them and no model is registered (either would recreate it)."""
    # One MLflow client for the whole report (each one resolves the store again); not made before a
    # tracking store exists, so a report on a missing store does not create an empty one.
    client = client_for(stores.tracking_uri) if stores.has_tracking_store() else None
    old = moved_from(client, stores.study_name, stores.artifact_location) if client is not None else None
    with relocated(old, local_folder(stores.artifact_location) if old is not None else None):
        return _write(exp, stores, out, client, old)


def _write(exp: Experiment, stores: Stores, out, client, moved: Path | None) -> Written:
    inputs = load_report(exp, stores, client)
    if client is not None:  # before anything is written: the runs this report uploads into lie inside the stores
        parents = [inputs.ablation.parent_run_id if inputs.ablation is not None else None,
                   inputs.sweep.parent_run_id if inputs.sweep is not None else None]
        for note in check_artifacts_inside(client, parents, stores.artifact_location, stores.mlruns):
            print(f"note: {note}")
    out_dir = check_out(out if out else Path("reports") / stores.study_name, stores)
    started = time.time() - 0.05  # files older than this were not written by this report
    result = analyse_report(exp, inputs)
    if inputs.sweep is not None:
        client = client or client_for(stores.tracking_uri)
    figures = report_figures(exp, inputs, result, out_dir)
    write_tables(result, out_dir)
    from .publish import describe, publish

    sweep = inputs.sweep
    try:  # before the words, so the report's Next: lines name what was exported and registered
        published = publish(exp, stores, client, sweep, result.sweep, result.effects, out_dir,
                            sweep.parent_run_id if sweep is not None else None, moved_from=moved)
    except Exception as e:  # noqa: BLE001 - the files on disk are the report; the block and registry build on it
        published = None
        print(f"warning: could not export the augmentation block or register the best model: {e}")
    words = report_words(exp, inputs, result, figures, published)
    (out_dir / "report.md").write_text(to_markdown(words.title, words.sections))
    (out_dir / "report.html").write_text(to_html(words.title, words.sections))
    try:
        describe(exp, stores, client, result.effects, published, words.title, words.answer)
    except Exception as e:  # noqa: BLE001 - the description is a convenience; the report is on disk
        print(f"warning: could not set the experiment's description in MLflow: {e}")
    parents = [p for p in (inputs.ablation.parent_run_id if inputs.ablation is not None else None,
                           sweep.parent_run_id if sweep is not None else None) if p]
    # Only this report's own files, never a walk of the folder (it may hold the stores, a pgpass, anything).
    written = [out_dir / n for n in REPORT_FILES
               if (out_dir / n).is_file() and (out_dir / n).stat().st_mtime >= started]
    if moved is not None and parents:
        print(f"note: these stores moved from {moved.parent} (their runs name it: MLflow keeps absolute paths); the "
              f"report was read where they are now and written only under {out_dir}, not uploaded to their runs")
        parents = []
    for parent in parents:
        try:
            for path in written:
                client.log_artifact(parent, str(path), "report")
        except Exception as e:  # the files on disk are the report; the artifact copy is a convenience
            print(f"warning: could not log the report to MLflow run {parent}: {e}")
    return Written(out_dir, result.sweep, words.answer, result.effects, published, words.next_steps)


TERMINAL_WIDTH = 99  # the summary a terminal shows stays under 100 columns; effects.csv has every column


def terminal_table(effects: pd.DataFrame) -> str:
    """The effects as a terminal shows them: augmentation, effect, the simultaneous 95% interval, p, verdict
    (and where it comes from, when both a sweep and an ablation are in the report), under 100 columns."""
    rows = []
    for r in effects.itertuples(index=False):
        row = {"augmentation": str(r.augmentation)[:20], "effect": _signed(r.effect),
               "95% interval": f"[{_signed(r.ci_low)}, {_signed(r.ci_high)}]", "p": display(pd.DataFrame(
                   {"p": [r.p_value]}))["p"].iloc[0], "verdict": r.verdict}
        if effects["source"].nunique() > 1 or (effects["source"] != "sweep").any():
            row["source"] = f"{r.source}: {r.comparison}"[:26]
        rows.append(row)
    text = pd.DataFrame(rows).to_string(index=False)
    return "\n".join(line[:TERMINAL_WIDTH] for line in text.splitlines())


def plain_answer(answer: str) -> str:
    """The answer as a terminal shows it: Markdown's emphasis and code marks taken out."""
    return answer.replace("**", "").replace("`", "")


def _signed(v) -> str:
    return "–" if v is None or v != v else f"{v:+.3f}"
