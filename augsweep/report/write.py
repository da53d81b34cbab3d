"""The report's entry point: read the stores, analyse the sweep and/or the latest ablation, write
`report.md`, `report.html`, `effects.csv` and the figures."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..experiment.schema import ConfigError, Experiment
from ..stores.records import ATTR_PARENT_RUN
from ..stores.study import Stores, load_study
from ..stores.tracking import check_artifacts_inside, client_for
from .. import inference
from .ablation_section import ablation_sections, analyse_ablation, effects_rows, family_size, figures, load_ablation
from .render import display, to_html, to_markdown
from .sweep_analysis import EFFECT_COLUMNS, FLOAT, Analysis
from .sweep_analysis import family_size as sweep_family_size
from .sweep_section import sweep_part


REPORT_ALPHA = 0.05  # the one family-wise error rate of a report


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


@dataclass
class Written:
    """What a report wrote: its folder, the sweep's analysis, the answer paragraph, the effects, and what was
    published (the augmentation block, the registered model: `publish.Published`)."""

    out_dir: Path
    analysis: Analysis | None
    answer: str
    effects: pd.DataFrame
    published: object = None
    next_steps: tuple = ()  # the answer's `Next:` lines, as the report says them


def add_next(section, lines: list[str]) -> None:
    """Put `lines` before the section's first `Next:` line (or at its end)."""
    if not lines:
        return
    at = next((i for i, b in enumerate(section.blocks) if isinstance(b, str) and b.startswith("Next:")),
              len(section.blocks))
    section.blocks[at:at] = lines


def answer_of(sections) -> str:
    """The report's answer: the first section's paragraphs, up to its first table or figure."""
    lines = []
    for block in sections[0].blocks if sections else []:
        if not isinstance(block, str):
            break
        lines.append(block)
    return "\n\n".join(lines)


def write(exp: Experiment, stores: Stores, out: str | Path | None = None) -> Written:
    """`write_report`, returning everything the API shows (`Written`); also writes the augmentation block,
    registers the best model and sets the experiment's description (`publish`)."""
    mlruns = stores.mlruns
    # One MLflow client for the whole report (each one resolves the store again); not made before a
    # tracking store exists, so a report on a missing store does not create an empty one.
    client = client_for(stores.tracking_uri) if stores.has_tracking_store() else None
    ablation = load_ablation(stores.tracking_uri, exp.name, client) if client is not None else None
    study = None
    if stores.has_study_store():
        try:
            study = load_study(stores)
        except ConfigError:
            if ablation is None:
                raise
    elif ablation is None:
        raise ConfigError(f"--mlruns has no study store. Received: mlruns={str(mlruns)!r} "
                          f"(expected {stores.study_db}); run sweep.py (or sweep.py --ablation) first")
    if client is not None:  # before anything is written: the runs this report uploads into lie inside the stores
        for note in check_artifacts_inside(client, [ablation.parent_run_id if ablation is not None else None,
                                                    study.user_attrs.get(ATTR_PARENT_RUN) if study is not None
                                                    else None], stores.artifact_location, mlruns):
            print(f"note: {note}")
    out_dir = check_out(out if out else Path("reports") / stores.study_name, stores)
    started = time.time() - 0.05  # files older than this were not written by this report

    sections, effects, parents = [], [], []
    # One alpha for every verdict in the report: the sweep's and the ablation's tables share it (Šidák by
    # their sizes), so a report holding both still errs with probability <= 0.05.
    sizes = [sweep_family_size(exp) if study is not None else 0, family_size(ablation) if ablation is not None else 0]
    alpha_sweep, alpha_ablation = inference.split_alpha(REPORT_ALPHA, sizes)
    if ablation is not None:
        ab = analyse_ablation(ablation, exp.equivalence_margin, alpha_ablation)
        sections += ablation_sections(ablation, ab, figures(ablation, ab, out_dir), str(mlruns), exp.path)
        effects.append(effects_rows(ab))
        parents.append(ablation.parent_run_id)
    analysis = None
    if study is not None:
        client = client or client_for(stores.tracking_uri)
        sweep_sections, sweep_effects, analysis = sweep_part(exp, stores, out_dir, study, ablation is not None,
                                                             client, alpha=alpha_sweep)
        sections += sweep_sections
        if sweep_effects is not None:
            effects.insert(0, sweep_effects)
        if study.user_attrs.get(ATTR_PARENT_RUN):
            parents.append(study.user_attrs[ATTR_PARENT_RUN])
    title = f"augsweep report: {stores.study_name}"
    all_effects = pd.concat(effects, ignore_index=True)[EFFECT_COLUMNS]
    all_effects.to_csv(out_dir / "effects.csv", index=False, float_format=FLOAT)
    if analysis is not None:
        from .budget import BUDGET_COLUMNS
        from .configurations import CONFIG_COLUMNS

        by_budget = analysis.by_budget if analysis.by_budget is not None else pd.DataFrame(columns=BUDGET_COLUMNS)
        by_budget[BUDGET_COLUMNS].to_csv(out_dir / "effects_by_budget.csv", index=False, float_format=FLOAT)
        configs = (analysis.configurations if analysis.configurations is not None
                   else pd.DataFrame(columns=CONFIG_COLUMNS))
        configs[CONFIG_COLUMNS].to_csv(out_dir / "configurations.csv", index=False, float_format=FLOAT)
    from .next_steps import use_lines
    from .publish import describe, publish

    try:  # before rendering, so the report's Next: lines name what was exported and registered
        published = publish(exp, stores, client, study, analysis, all_effects, out_dir,
                            study.user_attrs.get(ATTR_PARENT_RUN) if study is not None else None)
    except Exception as e:  # noqa: BLE001 - the files on disk are the report; the block and registry build on it
        published = None
        print(f"warning: could not export the augmentation block or register the best model: {e}")
    if sections and analysis is not None:
        add_next(sections[0], use_lines(published, analysis.configurations, stores.tracking_uri, stores.study_name))
    (out_dir / "report.md").write_text(to_markdown(title, sections))
    (out_dir / "report.html").write_text(to_html(title, sections))
    answer = answer_of(sections)
    try:
        describe(exp, stores, client, all_effects, published, title, answer)
    except Exception as e:  # noqa: BLE001 - the description is a convenience; the report is on disk
        print(f"warning: could not set the experiment's description in MLflow: {e}")
    # Only this report's own files, never a walk of the folder (it may hold the stores, a pgpass, anything).
    written = [out_dir / n for n in REPORT_FILES
               if (out_dir / n).is_file() and (out_dir / n).stat().st_mtime >= started]
    for parent in parents:
        try:
            for path in written:
                client.log_artifact(parent, str(path), "report")
        except Exception as e:  # the files on disk are the report; the artifact copy is a convenience
            print(f"warning: could not log the report to MLflow run {parent}: {e}")
    next_steps = tuple(b for b in (sections[0].blocks if sections else ()) if isinstance(b, str) and b.startswith("Next:"))
    return Written(out_dir, analysis, answer, all_effects, published, next_steps)


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
