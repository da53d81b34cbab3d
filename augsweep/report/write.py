"""The report's entry point: read the stores, analyse the sweep and/or the latest ablation, write
`report.md`, `report.html`, `effects.csv` and the figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..experiment.schema import ConfigError, Experiment
from ..stores.study import ATTR_PARENT_RUN, Stores, load_study
from ..stores.tracking import client_for
from .. import inference
from .ablation_section import ablation_sections, analyse_ablation, effects_rows, family_size, figures, load_ablation
from .render import display, to_html, to_markdown
from .sweep_section import EFFECT_COLUMNS, FLOAT, Analysis, sweep_part
from .sweep_section import family_size as sweep_family_size


REPORT_ALPHA = 0.05  # the one family-wise error rate of a report


def write_report(exp: Experiment, stores: Stores, out: str | Path | None = None) -> tuple[Path, Analysis | None]:
    """Read the stores, analyse the sweep and/or the latest ablation, and write report.md, report.html,
    effects.csv and PNGs into `out`. Returns the folder and the sweep's analysis (None without a sweep)."""
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
    out_dir = Path(out) if out else Path("reports") / stores.study_name
    out_dir.mkdir(parents=True, exist_ok=True)

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
    (out_dir / "report.md").write_text(to_markdown(title, sections))
    (out_dir / "report.html").write_text(to_html(title, sections))
    pd.concat(effects, ignore_index=True)[EFFECT_COLUMNS].to_csv(out_dir / "effects.csv", index=False,
                                                                  float_format=FLOAT)
    if analysis is not None:
        from .budget import BUDGET_COLUMNS
        from .configurations import CONFIG_COLUMNS

        by_budget = analysis.by_budget if analysis.by_budget is not None else pd.DataFrame(columns=BUDGET_COLUMNS)
        by_budget[BUDGET_COLUMNS].to_csv(out_dir / "effects_by_budget.csv", index=False, float_format=FLOAT)
        configs = (analysis.configurations if analysis.configurations is not None
                   else pd.DataFrame(columns=CONFIG_COLUMNS))
        configs[CONFIG_COLUMNS].to_csv(out_dir / "configurations.csv", index=False, float_format=FLOAT)
    for parent in parents:
        try:
            client.log_artifacts(parent, str(out_dir), "report")
        except Exception as e:  # the files on disk are the report; the artifact copy is a convenience
            print(f"warning: could not log the report to MLflow run {parent}: {e}")
    return out_dir, analysis


def terminal_table(effects: pd.DataFrame) -> str:
    return display(effects).to_string(index=False)
