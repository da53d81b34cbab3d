"""The report's figures: the sweep's PNGs drawn from an `Analysis`, the trials and their curves, and the
ablation's from its runs and `AblationAnalysis` (drawing itself is `plots`'; no stores)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import plots
from ..experiment.schema import Experiment
from ..experiment.space import aug_key
from .ablation_analysis import AblationAnalysis
from .analysis import ReportAnalysis
from .inputs import AblationData, ReportInputs
from .sweep_analysis import Analysis


def _run_label(trial: pd.Series) -> str:
    """`t07 d2 flip+rotation`: a trial as its MLflow run is named (the configuration, not only the number)."""
    return trial.get("mlflow_run") or f"t{int(trial['trial']):02d}"

def forest_seeds(a: Analysis) -> pd.DataFrame | None:
    """The per-seed-replicate effects the forest plot draws as dots: the ones behind the verdicts (complete
    replicates of finished blocks), None when there are none to draw."""
    return a.seed_frame if a.seed_frame is not None and len(a.seed_frame) else None


def sweep_figures(exp: Experiment, analysis: Analysis, trials: pd.DataFrame, curves: pd.DataFrame,
                  out_dir: Path) -> dict[str, Path]:
    """The sweep's figures by key (`forest`, `budget`, `curves`, `train_vs_val`, `history`), each where there is
    something to draw (the effect-vs-budget figure once `analysis.by_budget` is set)."""
    save = plots.save
    figures = {"forest": save(plots.forest(analysis.effects, margin=exp.equivalence_margin,
                                           seeds=forest_seeds(analysis)), out_dir / "effects_forest.png")}
    if analysis.by_budget is not None and len(analysis.by_budget):
        figures["budget"] = save(plots.effect_vs_budget(analysis.by_budget, exp.train.epochs, exp.equivalence_margin),
                                 out_dir / "effect_vs_budget.png")
    if len(curves):
        complete = curves[curves["trial"].isin(trials.loc[trials["state"] == "COMPLETE", "trial"])]
        if len(complete):
            figures["curves"] = save(plots.curves_by_augmentation(complete, analysis.augmentations),
                                     out_dir / "curves_by_augmentation.png")
        done = trials[trials["state"] == "COMPLETE"].sort_values(["value", "trial"])
        named = {}
        if len(done):
            named[f"best trial: {_run_label(done.iloc[0])}"] = int(done.iloc[0]["trial"])
        aug_cols = [aug_key(x) for x in analysis.augmentations if aug_key(x) in done]
        plain = done[~done[aug_cols].astype(bool).any(axis=1)] if aug_cols else done
        if len(plain):
            named[f"best without augmentation: {_run_label(plain.iloc[0])}"] = int(plain.iloc[0]["trial"])
        histories = {k: curves[curves["trial"] == v] for k, v in named.items() if (curves["trial"] == v).any()}
        if histories:
            figures["train_vs_val"] = save(plots.train_vs_val(histories), out_dir / "train_vs_val.png")
        # A factorial design runs its points in a shuffled order: a "best so far" line would read as progress.
        figures["history"] = save(plots.optimization_history(trials, curves, running_best=exp.sampler != "factorial"),
                                  out_dir / "optimization_history.png")
    return figures


def ablation_figures(data: AblationData, analysis: AblationAnalysis, out_dir: Path) -> dict[str, Path]:
    """The ablation's PNGs: learning curves per variant and the affinity/diversity scatter."""
    out = {}
    if len(data.curves):
        order = [v["name"] for v in data.spec["variants"]]
        out["ablation_curves"] = plots.save(plots.variant_curves(data.curves, order), out_dir / "ablation_curves.png")
    if len(analysis.affinity.dropna(subset=["affinity", "diversity"])):
        out["affinity"] = plots.save(plots.affinity_scatter(analysis.affinity), out_dir / "affinity_diversity.png")
    return out


def report_figures(exp: Experiment, inputs: ReportInputs, result: ReportAnalysis, out_dir: Path) -> dict[str, Path]:
    """Every figure of the report by key: the ablation's and the sweep's (their keys differ)."""
    figures = {}
    if result.ablation is not None:
        figures.update(ablation_figures(inputs.ablation, result.ablation, out_dir))
    if result.sweep is not None:
        figures.update(sweep_figures(exp, result.sweep, inputs.sweep.trials, inputs.sweep.curves, out_dir))
    return figures
