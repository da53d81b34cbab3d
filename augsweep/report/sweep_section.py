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

from .. import plots, runtime
from ..experiment.schema import ConfigError, Experiment
from ..experiment.space import TrialConfig
from ..stores.study import ATTR_PARENT_RUN, Stores, trial_table
from ..stores.tracking import client_for
from .. import inference
from . import stats
from . import render
from .render import Section

EFFECT_COLUMNS = ["augmentation", "effect", "ci_low", "ci_high", "p_value", "n_with", "n_without", "verdict", "source",
                  "comparison", "mde", "ci_method"]
STILL_IMPROVING = 0.5  # share of an augmentation's trainings whose best epoch was one of the last two
FLOAT = "%.6f"


# ----------------------------------------------------------------------------- loading (stores)


def trials_frame(study) -> pd.DataFrame:
    """One row per trial: number, state, value, flat config, MLflow run id, failure reason."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({
            "trial": t.number, "state": t.state.name, "value": t.value,
            "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
            "mlflow_run": f"t{t.number:02d} {t.user_attrs['config_name']}" if "config_name" in t.user_attrs else "",
            "failure_reason": t.user_attrs.get("failure_reason", ""),
            "block": t.user_attrs.get("block"), "design_point": t.user_attrs.get("design_point"),
            "config_name": t.user_attrs.get("config_name", ""),
            **t.user_attrs.get("config", {}),
        })
    return pd.DataFrame(rows)


def tidy_table(study, augmentations: list[str]) -> pd.DataFrame:
    """One row per (trial, repeat) of COMPLETE trials (`stores.study.trial_table`), `value` = best val_loss."""
    table = trial_table(study, augmentations)
    return table.assign(value=table["best_val_loss"]) if len(table) else table


def load_curves(client, tracking_uri: str, experiment_name: str, trials: pd.DataFrame, augmentations: list[str],
                bulk: bool = True) -> pd.DataFrame:
    """Per-epoch histories (`history.csv` artifacts) of complete and pruned trials, with their factors.

    The files are read in bulk where the experiment's artifact location says they are (`stores.run_files`);
    `bulk=False` downloads each run's file through MLflow's per-run look-up instead (what the report did
    before; the tests check that both give the same frame)."""
    from ..stores.run_files import artifact_uris, read_run_files

    done = trials[trials["state"].isin(["COMPLETE", "PRUNED"])]
    ids = [r for r in done["mlflow_run_id"] if isinstance(r, str) and r]
    uris = artifact_uris(client, experiment_name, ids) if bulk else {}
    histories = read_run_files(tracking_uri, {r: uris.get(r) for r in ids}, "history.csv", pd.read_csv)
    # A trial pruned before its first epoch has no history.
    rows = [t for _, t in done.iterrows() if t["mlflow_run_id"] in histories]
    if not rows:
        return pd.DataFrame()
    frames = [histories[t["mlflow_run_id"]] for t in rows]
    if any(list(f.columns) != list(frames[0].columns) for f in frames):  # pandas orders such a union its own way
        return pd.concat([f.assign(**trial_factors(t, augmentations)) for f, t in zip(frames, rows)],
                         ignore_index=True)
    # One concat, then each factor repeated over its trial's rows: the frame the per-trial assign-and-concat
    # made (same columns, dtypes and values), without 1,000 small frames.
    factors = pd.DataFrame([trial_factors(t, augmentations) for t in rows])
    lengths = [len(f) for f in frames]
    curves = pd.concat(frames, ignore_index=True)
    return curves.assign(**{c: np.repeat(factors[c].to_numpy(), lengths) for c in factors.columns})


def missing_curves(trials: pd.DataFrame, curves: pd.DataFrame) -> list[int]:
    """Numbers of the COMPLETE trials whose history the report could not read."""
    done = trials.loc[trials["state"] == "COMPLETE", "trial"].astype(int) if len(trials) else pd.Series(dtype=int)
    have = set(curves["trial"].astype(int)) if len(curves) else set()
    return sorted(n for n in done if n not in have)


def trial_factors(t: pd.Series, augmentations: list[str]) -> dict:
    """The columns a trial's curves carry: `trial`, `depth`, `aug_<name>` (a switch, False when not logged)."""
    out = {"trial": t["trial"], "depth": t.get("depth")}
    for a in augmentations:
        on = t.get(f"aug_{a}", False)
        out[f"aug_{a}"] = bool(on) if isinstance(on, (bool, np.bool_)) else False
    return out


def load_parent(client, tracking_uri: str, run_id: str | None) -> tuple[dict, dict]:
    """Tags of the sweep's parent run and the package versions it recorded."""
    from ..stores.run_files import read_run_files

    if not run_id:
        return {}, {}
    try:
        run = client.get_run(run_id)
    except Exception:
        return {}, {}
    try:
        versions = read_run_files(tracking_uri, {run_id: run.info.artifact_uri}, "versions.yaml",
                                  lambda path: yaml.safe_load(path.read_text())).get(run_id)
    except Exception:
        versions = {}
    return dict(run.data.tags), versions or {}


# ----------------------------------------------------------------------------- analysis (pure)


def effects_table(frame: pd.DataFrame, source: str = "sweep", comparison: str = "adjusted (all trials)") -> pd.DataFrame:
    """The `effects.csv` contract from an `inference.effects` frame, best first, ties by name."""
    out = frame.assign(source=source, comparison=comparison)[EFFECT_COLUMNS].copy()
    out["_nan"] = out["effect"].isna()
    out = out.sort_values(["_nan", "effect", "augmentation"], kind="mergesort").drop(columns="_nan")
    return out.reset_index(drop=True)


@dataclass
class Analysis:
    """Everything the report says, computed from the tidy table and the trials frame."""

    augmentations: list[str]
    counts: dict[str, int]
    effects: pd.DataFrame  # the effects.csv rows of the sweep
    full: pd.DataFrame  # the inference frame behind them (se, sd over seeds, blocks to decide, notes)
    budget: pd.DataFrame  # per augmentation: still improving at the last epoch? final train/val gap
    matched: pd.DataFrame
    gap: pd.DataFrame | None
    accuracy: pd.DataFrame | None
    by_depth: pd.DataFrame
    interactions: pd.DataFrame | None
    looks: tuple[int, int]
    seeds: int
    warnings: list[str] = field(default_factory=list)
    design: dict | None = None  # what a factorial study recorded about its design (block size, cap)
    doses: pd.DataFrame | None = None  # per augmentation and magnitude: low -> high change (descriptive)
    seed_frame: pd.DataFrame | None = None  # per-seed effects behind the verdicts (the strip in the forest plot)
    failed_points: list[str] = field(default_factory=list)  # design points with no finished training, named
    diverged: pd.DataFrame | None = None  # diverged trainings with and without each augmentation
    blocks_used: list[int] = field(default_factory=list)  # finished blocks whose complete replicates decide
    alpha: float = 0.05  # this sweep's share of the report's one alpha
    table: pd.DataFrame | None = None  # the tidy table the effects came from (one row per configuration x seed)


def looks_of(table: pd.DataFrame, design: dict | None, finished: list[int] | None = None) -> tuple[int, int]:
    """(looks done, maximum looks) of a factorial sweep's sequential design; (1, 1) otherwise. A look is a
    finished block (the stopping rule looks after each); without `finished`, every block in the table."""
    if not design or not len(table):
        return 1, 1
    done = len(finished) if finished is not None else int(table["block"].max()) + 1
    done = max(done, 1)
    return done, max(done, int(design.get("max_blocks", done)))


def finished_blocks(trials: pd.DataFrame) -> list[int]:
    """Blocks none of whose trials is still queued or running (a live report decides on these only)."""
    if "block" not in trials or not len(trials):
        return []
    t = trials[trials["block"].notna()]
    busy = set(t.loc[t["state"].isin(["RUNNING", "WAITING"]), "block"].astype(int))
    return sorted(set(t["block"].astype(int)) - busy)


def failed_points(trials: pd.DataFrame) -> list[str]:
    """Design points of finished blocks that have no COMPLETE trial (each failed, and so did its retry)."""
    if "design_point" not in trials or not len(trials):
        return []
    t = trials[trials["design_point"].notna() & trials["block"].notna()]
    out = []
    for (block, point), g in t.groupby(["block", "design_point"], sort=True):
        if (g["state"] == "COMPLETE").any() or g["state"].isin(["RUNNING", "WAITING"]).any():
            continue
        last = g.sort_values("trial").iloc[-1]
        reason = next((r for r in g.sort_values("trial")["failure_reason"][::-1] if r), last["state"].lower())
        name = last.get("config_name") or "?"
        out.append(f"block {int(block) + 1}, design point {int(point)} ({name}): "
                   f"{len(g)} attempt(s), t{', t'.join(f'{int(n):02d}' for n in g['trial'])}; last: {reason}")
    return out


def diverged_table(table: pd.DataFrame, augmentations: list[str]) -> pd.DataFrame | None:
    """Trainings that diverged (scored, not dropped), with and without each augmentation; None if none did."""
    if "diverged" not in table or not table["diverged"].fillna(False).astype(bool).any():
        return None
    d = table["diverged"].fillna(False).astype(bool)
    rows = []
    for a in augmentations:
        on = table[f"aug_{a}"].astype(bool)
        rows.append({"augmentation": a, "diverged_with": int(d[on].sum()), "trainings_with": int(on.sum()),
                     "diverged_without": int(d[~on].sum()), "trainings_without": int((~on).sum())})
    return pd.DataFrame(rows)


def budget_table(table: pd.DataFrame, augmentations: list[str]) -> pd.DataFrame:
    """Per augmentation: share of trainings with it (and without) whose best epoch was one of the last two
    (still improving when the epoch budget ended), and the final val − train loss gap with and without."""
    rows = []
    last = table["epochs_run"] - 1
    improving = table["best_epoch"] >= last - 1
    for a in augmentations:
        on = table[f"aug_{a}"].astype(bool)
        rows.append({"augmentation": a,
                     "still_improving_with": float(improving[on].mean()) if on.any() else np.nan,
                     "still_improving_without": float(improving[~on].mean()) if (~on).any() else np.nan,
                     "final_gap_with": float(table.loc[on, "gap"].mean()) if on.any() else np.nan,
                     "final_gap_without": float(table.loc[~on, "gap"].mean()) if (~on).any() else np.nan})
    return pd.DataFrame(rows)


def analyse(table: pd.DataFrame, trials: pd.DataFrame, exp: Experiment, design: dict | None = None,
            alpha: float = 0.05) -> Analysis:
    """Effects under the one verdict rule, descriptive views (pairs, gap, accuracy, depth), warnings.

    `alpha`: the sweep's share of the report's one alpha (all of it without an ablation). A factorial sweep
    decides on the complete seed replicates of its finished blocks only, the data its stopping rule saw."""
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
        # With common seeds, a configuration repeated within a block retrains to the same numbers: a replica.
        first = table.groupby(["config_key", "block"])["trial"].transform("min")
        replicas = table.loc[table["trial"] != first, "trial"].nunique()
        if replicas:
            warnings.append(f"{replicas} trial(s) repeated an earlier configuration with the same seeds; each "
                            "configuration is counted once.")
        table = table[table["trial"] == first]
    finished, points_failed, busy = None, [], []
    if design and len(table):
        finished = finished_blocks(trials)
        points_failed = failed_points(trials[trials["block"].isin(finished)])
        busy = sorted(set(trials["block"].dropna().astype(int)) - set(finished))
        if busy:
            warnings.append(f"Block(s) {', '.join(str(b + 1) for b in busy)} still running: this report decides on "
                            f"the finished block(s) {', '.join(str(b + 1) for b in finished) or 'none'} only.")
    # The rule the sweep's stopping rule applies (runs/blocks.py), so the sweep stops on the verdicts printed
    # here: complete seed replicates of finished blocks, effects and depth contrasts sharing `alpha`.
    verdicts = inference.decide_sweep(
        table, augs, margin=exp.equivalence_margin, alpha=alpha,
        points=int(design["block_size"]) if design and len(table) else None, finished=finished,
        max_looks=int((design or {}).get("max_blocks", 1)), seeds_per_block=exp.repeats)
    left = sorted(set(finished or []) - set(verdicts.blocks_used))
    if points_failed:
        warnings.append(f"{len(points_failed)} design point(s) have no finished training (named below); the "
                        f"seed replicates of their block(s) are incomplete and left out of the verdicts"
                        + (f" (block(s) {', '.join(str(b + 1) for b in left)})." if left else "."))
    # `decided`: the rows behind the verdicts; the descriptive views below use every finished training.
    decided, full, looks, blocks_used = verdicts.table, verdicts.effects, verdicts.looks, list(verdicts.blocks_used)
    alpha_effects = inference.sweep_alphas(len(augs), decided["depth"].nunique() if len(decided) else 0, alpha)[0]
    seed_frame = inference.seed_effects(decided, augs) if len(decided) else None
    doses = inference.dose_responses(decided, augs, alpha=alpha_effects) if len(decided) else None
    seeds = int(decided.groupby(["block", "repeat"]).ngroups) if len(decided) else 0

    def descriptive(outcome: str) -> pd.DataFrame | None:
        if outcome not in table or table[outcome].isna().all():
            return None
        frame = inference.effects(table, augs, margin=exp.equivalence_margin, outcome=outcome)
        return frame[["augmentation", "effect", "ci_low", "ci_high", "n_seeds"]]

    if exp.sampler == "tpe":
        warnings.append("This sweep used the TPE sampler, which concentrates trials where it expects good "
                        "values, so configurations are sampled unevenly and effects are estimated from an "
                        "unbalanced design. Prefer `sampler: factorial` to answer which augmentation helps.")
    elif exp.sampler in ("random", "grid"):
        warnings.append(f"The `{exp.sampler}` sampler answers \"what is a good configuration?\"; effects are "
                        "estimated from it, but `sampler: factorial` (a balanced design run in replicated blocks) "
                        "is the design that answers \"what does each augmentation do?\".")
    if seeds < 2:
        warnings.append("Every trial trained with the same seed(s): the effects hold no seed-to-seed variation, "
                        "so no verdict other than `undecided` can be honest. Use `repeats: 2` or more (or a "
                        "factorial design, whose blocks bring fresh seeds).")
    if counts["PRUNED"]:
        warnings.append(f"{counts['PRUNED']} pruned trial(s) are excluded from the effects (their partial curves "
                        "are in the plots). Pruning removes the worst configurations, so effects are conditional "
                        "on surviving; use `pruner: none` for unbiased estimates.")
    if counts["FAIL"]:
        warnings.append(f"{counts['FAIL']} failed trial(s) are excluded (reasons below).")
    if counts["RUNNING"]:
        warnings.append(f"{counts['RUNNING']} trial(s) were still running when this report was made.")
    for _, r in full.iterrows():
        if isinstance(r.get("note"), str) and r["note"]:
            warnings.append(f"{r['augmentation']}: {r['note']}")
    interactions = verdicts.interactions
    return Analysis(
        augmentations=augs, counts=counts, effects=effects_table(full), full=full,
        budget=budget_table(table, augs) if len(table) else pd.DataFrame(),
        matched=stats.matched_pairs(table, augs, outcome="value").drop(columns=["p_value", "verdict"],
                                                                        errors="ignore"),
        gap=descriptive("gap"), accuracy=descriptive("best_val_accuracy"),
        by_depth=stats.effects_by_depth(table, augs, outcome="value"), interactions=interactions,
        looks=looks, seeds=seeds, warnings=warnings, design=design, doses=doses, seed_frame=seed_frame,
        failed_points=points_failed, diverged=diverged_table(table, augs) if len(table) else None,
        blocks_used=blocks_used, alpha=alpha, table=table,
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


def _budget_word(a: Analysis, aug: str) -> str:
    row = a.budget[a.budget["augmentation"] == aug] if len(a.budget) else a.budget
    if len(row) and row["still_improving_with"].iloc[0] >= STILL_IMPROVING:
        return " at this budget"
    return ""


def network(exp: Experiment) -> str:
    """The network in words: the course's convnet, or the base, its weights and what of it trains."""
    m = exp.model
    if not m.uses_base:
        return "the course's convnet"
    weights = {"none": "random weights", "imagenet": "ImageNet weights"}.get(m.weights, f"weights from `{m.weights}`")
    trains = {True: "fine-tuned whole", False: "frozen"}.get(m.trainable, f"top {m.trainable} layers fine-tuned")
    return f"a `{m.base}` base ({weights}, {trains}) under the course's head"


def answer_blocks(exp: Experiment, a: Analysis, trials: pd.DataFrame, mlruns: str, command=None) -> list:
    """The answer paragraph: decided verdicts first, then the best configuration, what is undecided and how
    large an effect it could have seen, and the next command (`command(script, *args)`: one that runs as
    printed, `Stores.command`; default: `runtime.follow_up` on the embedded stores under `mlruns`)."""
    if command is None:
        def command(script, *extra):
            return runtime.follow_up(script, exp.path, mlruns, "", *extra)
    e = a.full
    parts = []
    for verdict in ("helps", "hurts", "negligible"):
        names = [f"{r.augmentation} ({r.effect:+.3f})" + (_budget_word(a, r.augmentation) if verdict == "hurts"
                                                          else "")
                 for r in e.itertuples() if r.verdict == verdict]
        if names:
            parts.append(f"**{verdict}**: {', '.join(names)}")
    lines = [f"On `{exp.dataset.source}` ({'x'.join(map(str, exp.dataset.image_size))}) with {network(exp)}, "
             f"turning each augmentation on changes the best validation loss as follows: "
             + ("; ".join(parts) + "." if parts else "nothing is decided yet.")]
    if exp.model.uses_base:
        lines.append(f"Depth is not searched: the network's depth is the base's ({exp.model.base}); only the "
                     f"augmentations and the head (`dense_units`, learning rate) vary.")
    if any(_budget_word(a, r.augmentation) for r in e.itertuples() if r.verdict == "hurts"):
        lines.append("\"At this budget\": most trainings with that augmentation were still improving when the "
                     f"{exp.train.epochs} epochs ended; rerun with more `train.epochs` before calling it harmful.")
    done = trials[trials["state"] == "COMPLETE"].sort_values(["value", "trial"])
    if len(done):
        b = done.iloc[0]
        on = [c[4:] for c in done.columns if c.startswith("aug_") and c.count("_") == 1
              and isinstance(b.get(c), (bool, np.bool_)) and bool(b.get(c))]
        mags = ", ".join(f"{c[4:]}={b[c]:.3g}" if isinstance(b[c], float) else f"{c[4:]}={b[c]}"
                         for c in done.columns if c.startswith("aug_") and c.count("_") >= 2 and pd.notna(b[c]))
        depth = f"depth {int(b['depth'])}, " if not exp.model.uses_base else ""
        lines.append(f"Best configuration: trial t{int(b['trial']):02d}, {depth}"
                     f"{'+'.join(on) or 'no augmentation'}{' (' + mags + ')' if mags else ''}, "
                     f"validation loss {b['value']:.4f}.")
    undecided = [r for r in e.itertuples() if r.verdict == "undecided"]
    if undecided:
        more, needed = [], []
        block = int((a.design or {}).get("block_size", 0)) or None
        for r in undecided:
            hint = getattr(r, "blocks_to_decide", float("nan"))
            text = f"{r.augmentation} (could have detected {r.mde:.3g} with 80% power"
            if hint == hint and block:
                text += f"; about {int(hint)} more block(s) ({int(hint) * block} trials) would decide it if its " \
                        f"effect and seed-to-seed spread held"
                needed.append(int(hint))
            elif hint == hint:
                text += f"; about {int(hint)} more seed replicate block(s) would decide it"
            more.append(text + ")")
        lines.append("Undecided: " + "; ".join(more) + ".")
        if needed and block and exp.sampler == "factorial":
            total = int((trials["state"] == "COMPLETE").sum()) + max(needed) * block
            lines.append(f"Next: `{command('sweep.py', '--trials', total)}` continues the same "
                         f"study with more blocks of fresh seeds until every augmentation is decided.")
        else:
            total = int((trials["state"] == "COMPLETE").sum()) * 2
            lines.append(f"Next: `{command('sweep.py', '--trials', total)}` continues the same study to {total} "
                         f"trials (`sampler: factorial` + `stop: decided` runs blocks until every augmentation is "
                         f"decided), or `{command('sweep.py', '--ablation')}` for paired seeds around the best "
                         f"configuration.")
    else:
        lines.append(f"Next: `{command('sweep.py', '--ablation')}` explains the best configuration with paired "
                     f"seeds.")
    return lines


def _magnitude_words(exp: Experiment, a: Analysis) -> str:
    how = (a.design or {}).get("magnitudes") or {}
    if how:
        parts = []
        for key, text in sorted(how.items()):
            name = key[4:].replace("_", " ", 1)
            if text.startswith("levels "):
                parts.append(f"{name} at {' and '.join(text[7:].split('|'))} (half each)")
            elif text.startswith("choices "):
                parts.append(f"{name} over {', '.join(text[8:].split('|'))}")
            else:
                parts.append(f"{name} {text}")
        return ("over its magnitudes: " + "; ".join(parts)
                + " (each balanced against every other switch, so a dose-response stays inside its own augmentation)")
    if exp.sampler == "factorial":
        return "at its magnitudes"
    return ("at its average sampled magnitude (the fit holds centred magnitude x switch terms, so a dose-response "
            "does not leak into the other augmentations)")


def estimand_blocks(exp: Experiment, a: Analysis) -> list:
    """What `effect` is an effect of, in one sentence, and which sources of variation its interval covers."""
    split = (f"the fixed validation split ({exp.dataset.validation_split:g} of the data)"
             if getattr(exp.dataset, "validation_split", None) else "the fixed validation split")
    others = ("every on/off setting of the other augmentations (each half the time)" if exp.sampler == "factorial"
              else "the settings of the other augmentations this sweep sampled")
    depths = sorted(set(int(d) for d in a.by_depth["depth"])) if "depth" in a.by_depth else []
    depth_words = f" and depth(s) {', '.join(map(str, depths))}" if depths and not exp.model.uses_base else ""
    used = (f" from the complete seed replicates of block(s) {', '.join(str(b + 1) for b in a.blocks_used)}"
            if a.blocks_used else "")
    lines = [
        f"**What `effect` measures.** The change in the best validation loss reached within {exp.train.epochs} "
        f"epochs, on {split}, from turning the augmentation on, {_magnitude_words(exp, a)}, averaged over "
        f"{others}{depth_words}{used}. Its interval covers seed-to-seed variation (weight initialisation, "
        f"augmentation draws, batch order) across {a.seeds} seed replicate(s), not a different data split or a "
        f"different epoch budget: a verdict is a statement about this budget."]
    if a.doses is not None and len(a.doses):
        lines += ["Dose-response (descriptive, no verdict): change in best validation loss from the lowest to the "
                  "highest magnitude trained, with the augmentation on; simultaneous intervals across seeds.",
                  a.doses[["augmentation", "magnitude", "effect", "ci_low", "ci_high", "n_seeds"]]]
    if a.failed_points:
        lines += ["Design points with no finished training (failed, and failed again on fresh seeds):",
                  *[f"- {p}" for p in a.failed_points]]
    if a.diverged is not None:
        lines += ["Trainings that diverged (non-finite loss) are scored, not dropped: each counts with the best "
                  "validation loss it reached before diverging (ln K, the loss of guessing, if it reached none).",
                  a.diverged]
    return lines


FIRST_SCREEN_COLUMNS = ["augmentation", "effect", "ci_low", "ci_high", "p_value", "verdict"]


def constant_columns(effects: pd.DataFrame) -> list[str]:
    """Columns of the effects table with one value in every row (said once in a sentence instead)."""
    keep = set(FIRST_SCREEN_COLUMNS)
    return [c for c in effects.columns if c not in keep and len(effects) > 1 and effects[c].nunique(dropna=False) == 1]


def first_screen_table(effects: pd.DataFrame) -> pd.DataFrame:
    """The effects table as the first screen shows it: the verdict's columns, plus any that vary by row."""
    varying = [c for c in effects.columns if c not in FIRST_SCREEN_COLUMNS and c not in constant_columns(effects)
               and c not in ("ci_method", "comparison")]
    return effects[[c for c in effects.columns if c in FIRST_SCREEN_COLUMNS or c in varying]]


def constants_sentence(effects: pd.DataFrame) -> str:
    """`Every row: source = sweep; n_with = 16; …` for the columns `constant_columns` leaves out."""
    parts = [f"{c} = {render.display(effects[[c]]).iloc[0, 0]}" for c in constant_columns(effects)
             if c != "ci_method"]  # the method paragraph names it
    return f"Every row of `effects.csv` also has: {'; '.join(parts)}." if parts else ""


def methods_paragraph(exp: Experiment, a: Analysis) -> str:
    """How the effects and verdicts were computed (below the first screen)."""
    method = a.full["ci_method"].iloc[0] if len(a.full) else "none"
    return (
        f"{a.counts['COMPLETE']} complete trials x {exp.repeats} paired repeat(s) from the `{exp.sampler}` sampler "
        f"({a.counts['PRUNED']} pruned, {a.counts['FAIL']} failed, excluded), {a.seeds} seed replicate(s). `effect` "
        f"is the change in best validation loss from turning the augmentation on (negative = it helped), estimated "
        f"within each seed replicate (adjusted for the other augmentations and depth) and averaged over them; the "
        f"interval comes from how the effect varies from seed to seed (the forest plot's dots: one per seed "
        f"replicate). One verdict rule: simultaneous 95% intervals across the augmentations (and across the "
        f"sequential looks of a `stop: decided` sweep), `p_value` adjusted the same way. `helps`/`hurts`: interval "
        f"entirely below/above 0; `negligible`: inside ±{exp.equivalence_margin:g} (the forest plot's grey band); "
        f"`undecided`: otherwise (`mde` = smallest effect detectable with 80% power). Method: {method}.")


def build_sections(exp: Experiment, analysis: Analysis, trials: pd.DataFrame, curves: pd.DataFrame,
                   imp: tuple, provenance: dict, figures: dict[str, Path], mlruns: str, command=None) -> list[Section]:
    """The report's content, in reading order: the first screen holds the answer, the forest plot and the best
    configuration; how the numbers were made (method, the full effects table) comes below."""
    a = analysis
    answer = answer_blocks(exp, a, trials, mlruns, command)
    later = [line for line in answer if line.startswith(("Best configuration:", "Next:"))]
    summary = Section("Answer", [line for line in answer if line not in later])
    if "forest" in figures:
        summary.blocks.append(("image", figures["forest"], "effect forest plot"))
    summary.blocks += [*later, first_screen_table(a.effects)]
    summary.blocks += estimand_blocks(exp, a)
    sections = [summary]
    if a.warnings:
        sections.append(Section("Read this before quoting the numbers", [f"- {w}" for w in a.warnings]))
    sections.append(Section("Method", [methods_paragraph(exp, a), constants_sentence(a.effects)]))
    if len(a.budget):
        sections.append(Section("Verdicts and the epoch budget", [
            "Augmentation slows convergence, and the best validation loss within the epoch budget counts that as "
            "harm. `still_improving_*` = share of trainings whose best epoch was one of the last two (the curve "
            "was still falling when training stopped); the final val − train gap is descriptive (any "
            "augmentation narrows it mechanically, so a lower gap is not a verdict).",
            a.budget,
        ]))
    matched = a.matched[a.matched["n_pairs"] > 0]
    sections.append(Section("Same on/off pattern (descriptive)", [
        "Configurations that differ in exactly one augmentation's switch, under the same seeds; magnitudes of the "
        "other augmentations may differ. Descriptive only (no verdict): the effects table above is the answer.",
        matched if len(matched) else "No such pairs in this sweep.",
    ]))
    extra = []
    if a.gap is not None:
        extra += ["Generalization gap (final `val_loss − loss`), descriptive (no verdict; not corrected across "
                  "outcomes): any augmentation lowers it mechanically.", a.gap]
    if a.accuracy is not None:
        extra += ["Best validation accuracy (positive = higher accuracy), descriptive (no verdict).", a.accuracy]
    if extra:
        sections.append(Section("Other outcomes", extra))
    if a.interactions is not None:
        sections.append(Section("Augmentation x depth interactions", [
            "Each augmentation's effect at the deepest minus at the shallowest depth, per seed replicate, under "
            "the same verdict rule (`helps`/`hurts` = the effect changes with depth).",
            a.interactions[["augmentation", "effect", "ci_low", "ci_high", "p_value", "verdict"]]
            if "augmentation" in a.interactions else a.interactions,
        ]))
    if len(a.by_depth) and a.by_depth["depth"].nunique() > 1:  # one depth: the effects table already says it
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
    for key, caption in (("curves", "Unadjusted: mean val_loss by epoch of the trials with vs without each "
                                    "augmentation (shaded: interquartile range over trials; log scale, zoomed on the later epochs "
                                    "where the differences are). Depth and the other "
                                    "augmentations are not held fixed here; the effects above are adjusted for them."),
                         ("train_vs_val", "Train vs validation loss: best trial and best trial without "
                                          "augmentation (the course's comparison)."),
                         ("history", "Optimization history: each trial's value"
                                     + (" and the best so far" if exp.sampler != "factorial" else
                                        " (a factorial design runs its points in a shuffled order, so there is no "
                                        "\"best so far\")")
                                     + "; every trial's val_loss curve, coloured by its value, the best trial "
                                       "highlighted, pruned dashed.")):
        if key in figures:
            plots_section.blocks += [caption, ("image", figures[key], key)]
    sections.append(plots_section)
    best = trials[trials["state"] == "COMPLETE"].sort_values(["value", "trial"]).head(10)
    best = best.assign(augmentations=[TrialConfig.from_flat(r.dropna().to_dict()).parameters()
                                      for _, r in best.iterrows()])
    cols = ["trial", "mlflow_run", "value", "depth", "augmentations"]
    failed = trials[trials["state"] == "FAIL"][["trial", "failure_reason"]]
    sections.append(Section("Trials", [
        "Best complete trials (value = mean over repeats of the best validation loss):", best[cols],
        *(["Failed trials:", failed] if len(failed) else []),
    ]))
    sections.append(Section("Provenance", [("code", yaml.safe_dump(provenance, sort_keys=False, width=120))]))
    return sections


def _run_label(trial: pd.Series) -> str:
    """`t07 d2 flip+rotation`: a trial as its MLflow run is named (the configuration, not only the number)."""
    return trial.get("mlflow_run") or f"t{int(trial['trial']):02d}"


def forest_seeds(a: Analysis) -> pd.DataFrame | None:
    """The per-seed-replicate effects the forest plot draws as dots: the ones behind the verdicts (complete
    replicates of finished blocks), None when there are none to draw."""
    return a.seed_frame if a.seed_frame is not None and len(a.seed_frame) else None


def file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sweep_part(exp: Experiment, stores: Stores, out_dir: Path, study, ablation_too: bool, client=None,
               alpha: float = 0.05):
    """Sections, effects rows and the analysis of the sweep (None when it has nothing to report and an
    ablation does). `client`: the report's one `MlflowClient` (made here when not given); `alpha`: the
    sweep's share of the report's one alpha."""
    trials = trials_frame(study)
    table = tidy_table(study, exp.search_space.augmentation_names)
    try:
        analysis = analyse(table, trials, exp, study.user_attrs.get("design"), alpha=alpha)
    except ConfigError as e:
        if ablation_too:
            return [Section("Sweep: effects across all trials", [f"Not estimated: {e}"])], None, None
        raise
    client = client or client_for(stores.tracking_uri)
    curves = load_curves(client, stores.tracking_uri, exp.name, trials, exp.search_space.augmentation_names)
    missing = missing_curves(trials, curves)
    if missing:
        analysis.warnings.append(
            f"{len(missing)} complete trial(s) have no curves in MLflow ({', '.join(f't{n:02d}' for n in missing[:10])}"
            f"{', …' if len(missing) > 10 else ''}): their results count in the effects, but their curves are "
            "missing from the figures (a run written by an older version, or an artifact store that lost them).")
    tags, versions = load_parent(client, stores.tracking_uri, study.user_attrs.get(ATTR_PARENT_RUN))

    figures = {"forest": plots.forest(analysis.effects, out_dir / "effects_forest.png",
                                      margin=exp.equivalence_margin, seeds=forest_seeds(analysis))}
    if len(curves):
        complete = curves[curves["trial"].isin(trials.loc[trials["state"] == "COMPLETE", "trial"])]
        if len(complete):
            figures["curves"] = plots.curves_by_augmentation(complete, analysis.augmentations,
                                                             out_dir / "curves_by_augmentation.png")
        done = trials[trials["state"] == "COMPLETE"].sort_values(["value", "trial"])
        named = {}
        if len(done):
            named[f"best trial: {_run_label(done.iloc[0])}"] = int(done.iloc[0]["trial"])
        aug_cols = [f"aug_{x}" for x in analysis.augmentations if f"aug_{x}" in done]
        plain = done[~done[aug_cols].astype(bool).any(axis=1)] if aug_cols else done
        if len(plain):
            named[f"best without augmentation: {_run_label(plain.iloc[0])}"] = int(plain.iloc[0]["trial"])
        histories = {k: curves[curves["trial"] == v] for k, v in named.items() if (curves["trial"] == v).any()}
        if histories:
            figures["train_vs_val"] = plots.train_vs_val(histories, out_dir / "train_vs_val.png")
        # A factorial design runs its points in a shuffled order: a "best so far" line would read as progress.
        figures["history"] = plots.optimization_history(trials, curves, out_dir / "optimization_history.png",
                                                        running_best=exp.sampler != "factorial")

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
        "rerun_sweep": stores.command("sweep.py", exp),
        "rerun_report": stores.command("report.py", exp),
    }
    sections = build_sections(exp, analysis, trials, curves, importance(study), provenance, figures,
                              str(stores.mlruns), lambda script, *extra: stores.command(script, exp, *extra))
    if study.user_attrs.get("stopped"):
        sections[0].blocks.insert(1, f"The sweep stopped: {study.user_attrs['stopped']}.")
    if ablation_too:  # the ablation's paired verdicts are the answer; the sweep's become the wider view
        sections[0].title = "Sweep: effects across all trials"
    return sections, analysis.effects, analysis


def family_size(exp: Experiment) -> int:
    """Verdict rows a sweep report carries: one per augmentation, and one augmentation x depth contrast each
    when the search space has two depths or more."""
    from ..experiment.design import depth_levels

    n = len(exp.search_space.augmentation_names)
    return n * (2 if len(depth_levels(exp.search_space)) > 1 and not exp.model.uses_base else 1)
