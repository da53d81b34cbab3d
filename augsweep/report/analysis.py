"""The report's analysis (pure: no stores): one alpha over the sweep's and the ablation's verdict tables (the
ablation inside the sweep's graph of tables), each analysed from the loaded `ReportInputs`, and the `effects.csv`
rows of both, as one `ReportAnalysis`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..experiment.schema import ConfigError, Experiment
from .ablation_analysis import AblationAnalysis, analyse_ablation, effects_rows
from .ablation_analysis import family_size as ablation_family_size
from .inputs import ReportInputs
from .sweep_analysis import EFFECT_COLUMNS, Analysis, analyse_sweep

REPORT_ALPHA = 0.05  # the one family-wise error rate of a report


@dataclass(frozen=True)
class ReportAnalysis:
    """What a report concludes: the sweep's analysis (None without a study, or when it has nothing to estimate
    and an ablation answers instead: `sweep_problem` says why), the ablation's, and every `effects.csv` row."""

    sweep: Analysis | None
    ablation: AblationAnalysis | None
    effects: pd.DataFrame
    sweep_problem: str | None = None


def analyse_report(exp: Experiment, inputs: ReportInputs) -> ReportAnalysis:
    """Both parts under one alpha, `REPORT_ALPHA`: the sweep's tables at the level its stopping rule used, and the
    ablation's inside the sweep's graph of tables, sharing the configurations' node (both ask whether the best
    configuration beats none; no stopping decision reads that node), so a report holding both still errs with
    probability <= 0.05 and "every augmentation decided" is said of the rows printed. Without a sweep (or one
    with nothing to estimate) the ablation has the whole alpha. A sweep with nothing to estimate raises its
    ConfigError unless an ablation is there to report."""
    followup = ablation_family_size(inputs.ablation) if inputs.ablation is not None else 0
    effects, ablation, sweep, problem = [], None, None, None
    alpha_ablation = REPORT_ALPHA
    if inputs.sweep is not None:
        try:
            sweep = analyse_sweep(exp, inputs.sweep, alpha=REPORT_ALPHA, followup_rows=followup)
            effects.append(sweep.effects)
            alpha_ablation = sweep.followup_alpha
        except ConfigError as e:
            if inputs.ablation is None:
                raise
            problem = str(e)
    if inputs.ablation is not None:
        ablation = analyse_ablation(inputs.ablation, exp.equivalence_margin, alpha_ablation)
        effects.append(effects_rows(ablation))
    return ReportAnalysis(sweep, ablation, pd.concat(effects, ignore_index=True)[EFFECT_COLUMNS], problem)
