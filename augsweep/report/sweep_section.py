"""The sweep's part of the report: which augmentations changed validation loss across all trials.

Only the `load_*` functions touch Optuna and MLflow; statistics live in `stats` (pure), figures in
`plots`, rendering in `render`. Output is byte-identical when regenerated from the same stores: no
wall-clock times, fixed float formats, sorted rows, deterministic PNGs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .. import plots
from ..experiment.schema import ConfigError, Experiment
from ..stores.study import ATTR_PARENT_RUN, Stores
from ..stores.tracking import client_for
from . import stats
from .render import Section, verdict_sentence

EFFECT_COLUMNS = ["augmentation", "effect", "ci_low", "ci_high", "p_value", "n_with", "n_without", "verdict", "source",
                  "comparison"]
FLOAT = "%.6f"


# ----------------------------------------------------------------------------- loading (stores)


def trials_frame(study) -> pd.DataFrame:
    """One row per trial: number, state, value, flat config, MLflow run id, failure reason."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({
            "trial": t.number, "state": t.state.name, "value": t.value,
            "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
            "failure_reason": t.user_attrs.get("failure_reason", ""),
            **t.user_attrs.get("config", {}),
        })
    return pd.DataFrame(rows)


def tidy_table(study, augmentations: list[str]) -> pd.DataFrame:
    """One row per (trial, repeat) of COMPLETE trials: value (best val_loss), gap, accuracy, factors."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name != "COMPLETE" or "config" not in t.user_attrs:
            continue
        cfg = t.user_attrs["config"]
        key = yaml.safe_dump(cfg, sort_keys=True)
        for r, rep in enumerate(t.user_attrs.get("repeats", [])):
            rows.append({
                "trial": t.number, "repeat": r, "config_key": key, "value": rep["best_val_loss"], "gap": rep.get("gap"),
                "best_val_accuracy": rep.get("best_val_accuracy"), "depth": cfg["depth"],
                **{f"aug_{a}": bool(cfg.get(f"aug_{a}", False)) for a in augmentations},
            })
    return pd.DataFrame(rows)


def load_curves(tracking_uri: str, trials: pd.DataFrame, augmentations: list[str]) -> pd.DataFrame:
    """Per-epoch histories (`history.csv` artifacts) of complete and pruned trials, with their factors."""
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per trial otherwise
    frames = []
    for _, t in trials[trials["state"].isin(["COMPLETE", "PRUNED"])].iterrows():
        if not t["mlflow_run_id"]:
            continue
        try:
            local = mlflow.artifacts.download_artifacts(run_id=t["mlflow_run_id"], artifact_path="history.csv",
                                                        tracking_uri=tracking_uri)
        except Exception:  # a trial pruned before its first epoch has no history
            continue
        h = pd.read_csv(local).assign(trial=t["trial"], depth=t.get("depth"))
        for a in augmentations:
            on = t.get(f"aug_{a}", False)
            h[f"aug_{a}"] = bool(on) if isinstance(on, (bool, np.bool_)) else False
        frames.append(h)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_parent(tracking_uri: str, run_id: str | None) -> tuple[dict, dict]:
    """Tags of the sweep's parent run and the package versions it recorded."""
    if not run_id:
        return {}, {}
    client = client_for(tracking_uri)
    try:
        run = client.get_run(run_id)
    except Exception:
        return {}, {}
    import mlflow

    try:
        versions = yaml.safe_load(Path(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="versions.yaml", tracking_uri=tracking_uri)).read_text())
    except Exception:
        versions = {}
    return dict(run.data.tags), versions or {}


# ----------------------------------------------------------------------------- analysis (pure)


def effects_table(adjusted: pd.DataFrame, source: str = "sweep") -> pd.DataFrame:
    """The `effects.csv` contract from `stats.adjusted_effects` output, best first, ties by name."""
    out = adjusted.assign(source=source, comparison="adjusted (all trials)")[EFFECT_COLUMNS].copy()
    out["_nan"] = out["effect"].isna()
    out = out.sort_values(["_nan", "effect", "augmentation"], kind="mergesort").drop(columns="_nan")
    return out.reset_index(drop=True)


@dataclass
class Analysis:
    """Everything the report says, computed from the tidy table and the trials frame."""

    augmentations: list[str]
    counts: dict[str, int]
    effects: pd.DataFrame
    adjusted: pd.DataFrame
    matched: pd.DataFrame
    gap: pd.DataFrame | None
    accuracy: pd.DataFrame | None
    by_depth: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def analyse(table: pd.DataFrame, trials: pd.DataFrame, exp: Experiment) -> Analysis:
    """Effects with CIs, matched pairs, gap/accuracy effects, depth interaction, honesty warnings."""
    augs = exp.search_space.augmentation_names
    counts = {s: int((trials["state"] == s).sum()) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")} \
        if len(trials) else {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0}
    if counts["COMPLETE"] == 0:
        raise ConfigError(f"no finished trials in study {exp.name!r}: nothing to report yet "
                          f"({counts['FAIL']} failed, {counts['PRUNED']} pruned); run sweep.py first")
    if not augs:
        raise ConfigError(f"search_space has no augmentations: there is no effect to estimate ({exp.path})")
    warnings = []
    if len(table):
        # With common seeds, a repeated configuration retrains to the same numbers: a replica, not evidence.
        first = table.groupby("config_key")["trial"].transform("min")
        replicas = table.loc[table["trial"] != first, "trial"].nunique()
        if replicas:
            warnings.append(f"{replicas} trial(s) repeated an earlier configuration with the same seeds; each "
                            "configuration is counted once.")
        table = table[table["trial"] == first]
    try:
        adjusted = stats.adjusted_effects(table, augs, outcome="value")
    except stats.InsufficientData as e:
        raise ConfigError(f"too few finished trials to estimate effects ({counts['COMPLETE']} complete): {e}") from None

    def secondary(outcome: str) -> pd.DataFrame | None:
        if outcome not in table or table[outcome].isna().all():
            return None
        try:
            return stats.adjusted_effects(table, augs, outcome=outcome)
        except stats.InsufficientData:
            return None

    if exp.sampler == "tpe":
        warnings.append("This sweep used the TPE sampler, which concentrates trials where it expects good "
                        "values, so configurations are sampled unevenly and effects are estimated from an "
                        "unbalanced design. Prefer `sampler: random` or `grid` for effect estimates.")
    if counts["PRUNED"]:
        warnings.append(f"{counts['PRUNED']} pruned trial(s) are excluded from the effects (their partial curves "
                        "are in the plots). Pruning removes the worst configurations, so effects are conditional "
                        "on surviving; use `pruner: none` for unbiased estimates.")
    if counts["FAIL"]:
        warnings.append(f"{counts['FAIL']} failed trial(s) are excluded (reasons below).")
    if counts["RUNNING"]:
        warnings.append(f"{counts['RUNNING']} trial(s) were still running when this report was made.")
    for _, r in adjusted.iterrows():
        if isinstance(r.get("note"), str) and r["note"]:
            warnings.append(f"{r['augmentation']}: {r['note']}")
    small = [a for a, nw, nwo in zip(adjusted["augmentation"], adjusted["n_with"], adjusted["n_without"])
             if min(nw, nwo) < 3]
    if small:
        warnings.append(f"Fewer than 3 trials with or without {', '.join(sorted(small))}: these estimates rest on "
                        "very little data.")
    return Analysis(
        augmentations=augs, counts=counts, effects=effects_table(adjusted), adjusted=adjusted,
        matched=stats.matched_pairs(table, augs, outcome="value"),
        gap=secondary("gap"), accuracy=secondary("best_val_accuracy"),
        by_depth=stats.effects_by_depth(table, augs, outcome="value"), warnings=warnings,
    )


def importance(study) -> tuple[pd.DataFrame | None, str]:
    """Optuna's fANOVA importance (seeded) as a secondary, unsigned view."""
    import optuna

    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as e:
        return None, f"not available: {str(e).splitlines()[0]}"
    frame = pd.DataFrame({"parameter": list(values), "importance": list(values.values())})
    return frame.sort_values(["importance", "parameter"], ascending=[False, True]), "FanovaImportanceEvaluator(seed=0)"


# ----------------------------------------------------------------------------- rendering


def build_sections(exp: Experiment, analysis: Analysis, trials: pd.DataFrame, curves: pd.DataFrame,
                   imp: tuple, provenance: dict, figures: dict[str, Path], mlruns: str) -> list[Section]:
    """The report's content, in reading order."""
    a = analysis
    method = ", ".join(sorted(set(a.adjusted["method"].dropna())))
    summary = Section("Answer", [
        f"Effect of turning each augmentation on, on the best validation loss of `{exp.dataset.source}` "
        f"({'x'.join(map(str, exp.dataset.image_size))}) with the course's convnet: " + verdict_sentence(a.effects),
        f"{a.counts['COMPLETE']} complete trials x {exp.repeats} paired repeat(s) from the `{exp.sampler}` sampler "
        f"({a.counts['PRUNED']} pruned, {a.counts['FAIL']} failed, excluded). `effect` is the change in validation "
        f"loss (negative = it helped), adjusted for the other augmentations and depth; 95% CI; p-values "
        f"Holm-corrected across augmentations. Method: {method}.",
        a.effects,
    ])
    if "forest" in figures:
        summary.blocks.append(("image", figures["forest"], "effect forest plot"))
    sections = [summary]
    if a.warnings:
        sections.append(Section("Read this before quoting the numbers", [f"- {w}" for w in a.warnings]))
    matched = a.matched[a.matched["n_pairs"] > 0]
    sections.append(Section("Paired evidence (configurations differing only in one augmentation)", [
        "Trials share seeds per repeat, so two configurations that differ in exactly one augmentation form a "
        "matched pair; `mean_diff` = with − without (t-interval over pairs, Wilcoxon signed-rank p).",
        matched if len(matched) else "No matched pairs in this sweep (the grid sampler produces them).",
    ]))
    extra = []
    if a.gap is not None:
        extra += ["Generalization gap (final `val_loss − loss`): augmentation that keeps the curves together "
                  "lowers it.", effects_table(a.gap)[EFFECT_COLUMNS[:-2]]]
    if a.accuracy is not None:
        acc = effects_table(a.accuracy)[EFFECT_COLUMNS[:-2]]
        acc["verdict"] = acc["verdict"].map({"helps": "hurts", "hurts": "helps"}).fillna(acc["verdict"])
        extra += ["Best validation accuracy (positive = higher accuracy, so here `helps` means the CI is "
                  "entirely above 0).", acc.sort_values(["effect", "augmentation"], ascending=[False, True], na_position="last")]
    if extra:
        sections.append(Section("Other outcomes", extra))
    sections.append(Section("Augmentation x depth", [
        "Mean best validation loss with and without each augmentation at each depth (trial means).",
        a.by_depth,
    ]))
    imp_frame, evaluator = imp
    sections.append(Section("Parameter importance (secondary view)", [
        f"Optuna importance by {evaluator}: how much of the variance in trial values each parameter explains. "
        "It has no sign and no confidence interval; the effects above are the answer."
        if imp_frame is not None else f"Optuna importance: {evaluator}.",
        *([imp_frame] if imp_frame is not None else []),
    ]))
    plots_section = Section("Learning curves", [])
    for key, caption in (("curves", "Mean val_loss by epoch with vs without each augmentation (shaded: "
                                    "interquartile range over trials)."),
                         ("train_vs_val", "Train vs validation loss: best trial and best trial without "
                                          "augmentation (the course's comparison)."),
                         ("history", "Optimization history; every trial's curve, pruned trials dashed.")):
        if key in figures:
            plots_section.blocks += [caption, ("image", figures[key], key)]
    sections.append(plots_section)
    best = trials[trials["state"] == "COMPLETE"].sort_values(["value", "trial"]).head(10)
    cols = ["trial", "value", "depth", *[f"aug_{x}" for x in a.augmentations if f"aug_{x}" in best]]
    failed = trials[trials["state"] == "FAIL"][["trial", "failure_reason"]]
    sections.append(Section("Trials", [
        "Best complete trials (value = mean over repeats of the best validation loss):", best[cols],
        *(["Failed trials:", failed] if len(failed) else []),
    ]))
    sections.append(Section("Provenance", [("code", yaml.safe_dump(provenance, sort_keys=False, width=120))]))
    return sections


def file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sweep_part(exp: Experiment, stores: Stores, out_dir: Path, study, ablation_too: bool):
    """Sections, effects rows and the analysis of the sweep (None when it has nothing to report and an
    ablation does)."""
    trials = trials_frame(study)
    table = tidy_table(study, exp.search_space.augmentation_names)
    try:
        analysis = analyse(table, trials, exp)
    except ConfigError as e:
        if ablation_too:
            return [Section("Sweep: effects across all trials", [f"Not estimated: {e}"])], None, None
        raise
    curves = load_curves(stores.tracking_uri, trials, exp.search_space.augmentation_names)
    tags, versions = load_parent(stores.tracking_uri, study.user_attrs.get(ATTR_PARENT_RUN))

    figures = {"forest": plots.forest(analysis.effects, out_dir / "effects_forest.png")}
    if len(curves):
        complete = curves[curves["trial"].isin(trials.loc[trials["state"] == "COMPLETE", "trial"])]
        if len(complete):
            figures["curves"] = plots.curves_by_augmentation(complete, analysis.augmentations,
                                                             out_dir / "curves_by_augmentation.png")
        done = trials[trials["state"] == "COMPLETE"].sort_values(["value", "trial"])
        named = {}
        if len(done):
            named[f"best trial t{int(done.iloc[0]['trial']):02d}"] = int(done.iloc[0]["trial"])
        aug_cols = [f"aug_{x}" for x in analysis.augmentations if f"aug_{x}" in done]
        plain = done[~done[aug_cols].astype(bool).any(axis=1)] if aug_cols else done
        if len(plain):
            named[f"best without augmentation t{int(plain.iloc[0]['trial']):02d}"] = int(plain.iloc[0]["trial"])
        histories = {k: curves[curves["trial"] == v] for k, v in named.items() if (curves["trial"] == v).any()}
        if histories:
            figures["train_vs_val"] = plots.train_vs_val(histories, out_dir / "train_vs_val.png")
        figures["history"] = plots.optimization_history(trials, curves, out_dir / "optimization_history.png")

    provenance = {
        "experiment_file": exp.path,
        "experiment_file_sha256": file_sha256(exp.path),
        "resolved_experiment_sha256": exp.sha256(),
        "study": stores.study_name,
        "git_commit": tags.get("git_commit", "unknown"),
        "device": tags.get("device", "unknown"),
        "backend": tags.get("backend", "unknown"),
        "dataset_fingerprint": study.user_attrs.get("dataset_fingerprint", "unknown"),
        "package_versions": versions,
        "rerun_sweep": f"python sweep.py {exp.path} --mlruns {stores.mlruns}",
        "rerun_report": f"python report.py {exp.path} --mlruns {stores.mlruns}",
    }
    sections = build_sections(exp, analysis, trials, curves, importance(study), provenance, figures,
                              str(stores.mlruns))
    if ablation_too:  # the ablation's paired verdicts are the answer; the sweep's become the wider view
        sections[0].title = "Sweep: effects across all trials"
    return sections, analysis.effects, analysis


