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
from . import budget as budget_mod
from . import configurations as configurations_mod
from .render import Section

EFFECT_COLUMNS = ["augmentation", "effect", "ci_low", "ci_high", "p_value", "n_with", "n_without", "verdict", "source",
                  "comparison", "mde", "ci_method"]
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
    pairs: pd.DataFrame | None = None  # augmentation x augmentation contrasts (a design that separates them)
    conditional: pd.DataFrame | None = None  # conditional effects of the augmentations in decided pairs
    configurations: pd.DataFrame | None = None  # configurations.csv: distinct configurations by their mean
    configurations_alpha: float = 0.0  # the configurations' look level (Šidák over them inside it)
    by_budget: pd.DataFrame | None = None  # effects_by_budget.csv (descriptive), set once the curves are read
    moving: pd.DataFrame | None = None  # per augmentation: is its effect still moving at the end of the budget?
    unconverged: pd.DataFrame | None = None  # train.until_converged: trainings that hit the cap, per augmentation
    table: pd.DataFrame | None = None  # the rows that decided the verdicts (complete replicates, finished blocks)


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
    rule = inference.VerdictRule(margin=exp.equivalence_margin, alpha=alpha,
                                 max_looks=int((design or {}).get("max_blocks", 1)), seeds_per_block=exp.repeats)
    verdicts = inference.decide_sweep(table, augs, rule, points=int(design["block_size"]) if design and len(table)
                                      else None, finished=finished)
    left = sorted(set(finished or []) - set(verdicts.blocks_used))
    if points_failed:
        warnings.append(f"{len(points_failed)} design point(s) have no finished training (named below); the "
                        f"seed replicates of their block(s) are incomplete and left out of the verdicts"
                        + (f" (block(s) {', '.join(str(b + 1) for b in left)})." if left else "."))
    # `decided`: the rows behind the verdicts; the descriptive views below use every finished training.
    decided, full, looks, blocks_used = verdicts.table, verdicts.effects, verdicts.looks, list(verdicts.blocks_used)
    alpha_effects = (verdicts.shares or {}).get("effects", alpha)  # the effects' share (descriptive doses use it)
    seed_frame = inference.seed_effects(decided, augs) if len(decided) else None
    doses = inference.dose_responses(decided, augs, alpha=alpha_effects) if len(decided) else None
    seeds = int(decided.groupby(["block", "repeat"]).ngroups) if len(decided) else 0

    def descriptive(outcome: str) -> pd.DataFrame | None:
        if outcome not in table or table[outcome].isna().all():
            return None
        frame = inference.effects(table, augs, inference.VerdictRule(margin=exp.equivalence_margin), outcome=outcome)
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
    shares = verdicts.shares or {}
    conf_alpha = (inference.look_alpha(shares["configurations"], *looks) if shares.get("configurations") else 0.0)
    configs = (configurations_mod.configurations(decided, augs, margin=exp.equivalence_margin, alpha_look=conf_alpha)
               if conf_alpha and len(decided) else None)
    return Analysis(
        augmentations=augs, counts=counts, effects=effects_table(full), full=full,
        budget=budget_table(table, augs) if len(table) else pd.DataFrame(),
        matched=stats.matched_pairs(table, augs, outcome="value").drop(columns=["p_value", "verdict"],
                                                                        errors="ignore"),
        gap=descriptive("gap"), accuracy=descriptive("best_val_accuracy"),
        by_depth=stats.effects_by_depth(table, augs, outcome="value"), interactions=interactions,
        looks=looks, seeds=seeds, warnings=warnings, design=design, doses=doses, seed_frame=seed_frame,
        failed_points=points_failed, diverged=diverged_table(table, augs) if len(table) else None,
        blocks_used=blocks_used, alpha=alpha, pairs=verdicts.pairs, conditional=verdicts.conditional,
        configurations=configs, configurations_alpha=conf_alpha, table=decided,
        unconverged=unconverged_table(table, augs, exp) if len(table) else None,
    )


def unconverged_table(table: pd.DataFrame, augmentations: list[str], exp: Experiment) -> pd.DataFrame | None:
    """`train.until_converged`: trainings that reached the epoch cap with fewer than `patience` epochs since
    their best (early stopping never fired: not converged), with and without each augmentation."""
    conv = exp.train.until_converged
    if conv is None or "epochs_run" not in table or "best_epoch" not in table:
        return None
    left = table["epochs_run"].astype(float) - 1 - table["best_epoch"].astype(float)
    capped = (table["epochs_run"].astype(float) >= conv.max_epochs) & (left < conv.patience)
    rows = [{"augmentation": "(all)", "unconverged": int(capped.sum()), "trainings": int(len(table)),
             "median_epochs_run": float(table["epochs_run"].median())}]
    for a in augmentations:
        on = table[f"aug_{a}"].astype(bool)
        rows.append({"augmentation": a, "unconverged_with": int(capped[on].sum()), "trainings_with": int(on.sum()),
                     "unconverged_without": int(capped[~on].sum()), "trainings_without": int((~on).sum()),
                     "median_epochs_with": float(table.loc[on, "epochs_run"].median()) if on.any() else np.nan,
                     "median_epochs_without": float(table.loc[~on, "epochs_run"].median()) if (~on).any() else np.nan})
    out = pd.DataFrame(rows[1:])
    out.attrs.update(rows[0])
    return out


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


def _bound(a: Analysis, r) -> bool:
    """Whether a `helps`/`hurts` row is budget-bound (its effect still moving at the end of the budget)."""
    m = budget_mod.moving_row(a.moving, r.augmentation)
    return r.verdict in ("helps", "hurts") and m is not None and bool(m["moving"])


def budget_lines(exp: Experiment, a: Analysis) -> list[str]:
    """`Budget-bound: rotation hurts at 60 epochs (shrinking: +0.344 at 20 → +0.050 at 60; ...)`."""
    out = []
    for r in a.full.itertuples():
        if _bound(a, r):
            out.append(f"{r.augmentation} " + budget_mod.budget_words(
                r.verdict, r.effect, exp.train.epochs, a.by_budget, budget_mod.moving_row(a.moving, r.augmentation)))
    if not out:
        return []
    hint = ("raise `train.until_converged.max_epochs`" if exp.train.until_converged
            else "rerun with more `train.epochs`, or `train.until_converged` for the converged outcome")
    return [f"Budget-bound ({hint}; the effect-vs-budget figure shows each trajectory): " + "; ".join(out) + "."]


_COND_WORDS = {"helps": "helps", "hurts": "hurts", "negligible": "does nothing", "undecided": "is undecided"}


def interaction_lines(a: Analysis) -> list[str]:
    """`warp x contrast interact: warp helps without contrast (-0.050), does nothing with it (+0.001); ...`."""
    if a.conditional is None or not len(a.conditional):
        return []
    out = []
    for pair, g in a.conditional.groupby("pair", sort=True):
        parts = []
        for aug, h in g.groupby("augmentation", sort=False):
            words = []
            for r in h.itertuples():
                other, state = r.given.rsplit(" ", 1)
                words.append(f"{_COND_WORDS[r.verdict]} {'with' if state == 'on' else 'without'} "
                             f"{other if not words else 'it'} ({r.effect:+.3f})")
            parts.append(f"{aug} {', '.join(words)}")
        out.append(f"{pair} interact: " + "; ".join(parts))
    return ["**Decided interactions** (the averages above mislead for these; conditional effects decided at the "
            "effects' level, Šidák over the marginal and conditional rows together): " + ". ".join(out) + "."]


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
        names = [f"{r.augmentation} ({r.effect:+.3f}" + (f", at {exp.train.epochs} epochs" if _bound(a, r) else "")
                 + ")" for r in e.itertuples() if r.verdict == verdict]
        if names:
            parts.append(f"**{verdict}**: {', '.join(names)}")
    lines = [f"On `{exp.dataset.source}` ({'x'.join(map(str, exp.dataset.image_size))}) with {network(exp)}, "
             f"turning each augmentation on changes the best validation loss as follows: "
             + ("; ".join(parts) + "." if parts else "nothing is decided yet.")]
    if exp.model.uses_base:
        lines.append(f"Depth is not searched: the network's depth is the base's ({exp.model.base}); only the "
                     f"augmentations and the head (`dense_units`, learning rate) vary.")
    lines += budget_lines(exp, a)
    lines += interaction_lines(a)
    if a.configurations is not None and len(a.configurations):
        lines += configurations_mod.best_words(a.configurations, e, a.pairs, a.augmentations, a.configurations_alpha)
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


def _outcome_words(exp: Experiment) -> str:
    conv = exp.train.until_converged
    if conv is None:
        return f"within {exp.train.epochs} epochs"
    return (f"by each training run until converged (stopped once val_loss had not improved for {conv.patience} "
            f"epochs, at most {conv.max_epochs})")


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
        f"**What `effect` measures.** The change in the best validation loss reached {_outcome_words(exp)}, "
        f"on {split}, from turning the augmentation on, {_magnitude_words(exp, a)}, averaged over "
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
    later = [line for line in answer if line.startswith(("Best configuration", "Next:"))]
    summary = Section("Answer", [line for line in answer if line not in later])
    # The first screen: the answer, then the forest plot and the effect-vs-budget figure side by side.
    first = [(figures[k], alt) for k, alt in (("forest", "effect forest plot"), ("budget", "effect vs epoch budget"))
             if k in figures]
    if first:
        summary.blocks.append(("images", first))
    summary.blocks += [*later, first_screen_table(a.effects)]
    summary.blocks += estimand_blocks(exp, a)
    sections = [summary]
    if a.warnings:
        sections.append(Section("Read this before quoting the numbers", [f"- {w}" for w in a.warnings]))
    sections.append(Section("Method", [methods_paragraph(exp, a), constants_sentence(a.effects)]))
    sections += issue21_sections(exp, a)
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
    best = trials[trials["state"] == "COMPLETE"].sort_values(["value", "trial"])
    best = best.drop_duplicates("config_name").head(10) if "config_name" in best else best.head(10)
    best = best.assign(augmentations=[TrialConfig.from_flat(r.dropna().to_dict()).parameters()
                                      for _, r in best.iterrows()])
    cols = ["trial", "mlflow_run", "value", "depth", "augmentations"]
    failed = trials[trials["state"] == "FAIL"][["trial", "failure_reason"]]
    sections.append(Section("Trials", [
        "Best complete trial of each of the best distinct configurations (value = mean over its repeats of the "
        "best validation loss; one trial's value is a winner's-curse pick: the configurations above are ranked by "
        "their mean over every seed):", best[cols],
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


def issue21_sections(exp: Experiment, a: Analysis) -> list[Section]:
    """Effect vs budget, aug x aug interactions, configurations by their mean, convergence (new blocks)."""
    out = []
    if a.by_budget is not None and len(a.by_budget):
        wide = a.by_budget.pivot(index="augmentation", columns="epochs", values="effect")
        wide.columns = [f"e={c}" for c in wide.columns]
        blocks = ["Each augmentation's effect on the best validation loss within the first e epochs, from the "
                  "logged curves, by the verdicts' per-seed rule on the same seed replicates (the last column is "
                  "the verdict's effect). The intervals (in `effects_by_budget.csv` and the figure's bands) are "
                  "**descriptive**: simultaneous across the augmentations at each budget, at the verdicts' level, "
                  "with no verdict of their own and no share of the report's alpha.", wide.reset_index()]
        if a.moving is not None and len(a.moving):
            blocks += ["Still moving: the per-seed change of the effect from 3/4 of the budget to the budget, with "
                       "its interval at the verdicts' per-comparison level; `moving` (the interval excludes 0) marks "
                       "a `helps`/`hurts` as budget-bound in the answer. It only qualifies a verdict, so it takes no "
                       "share of alpha.", a.moving[["augmentation", "at_three_quarters", "change", "ci_low",
                                                    "ci_high", "moving", "direction"]]]
        out.append(Section("Effect vs epoch budget", blocks))
    if a.pairs is not None and len(a.pairs):
        blocks = ["Two-way augmentation x augmentation contrasts (this design separates them from the main effects "
                  "and from each other): `effect` is how much one augmentation's effect changes when the other is "
                  "turned on, per seed replicate, under the same rule with its share of the sweep's alpha "
                  "(Šidák over the pairs); `helps`/`hurts` = a decided interaction.",
                  a.pairs[["term", "effect", "ci_low", "ci_high", "p_value", "verdict"]]]
        if a.conditional is not None and len(a.conditional):
            blocks += ["Conditional effects of the augmentations in a decided interaction (each decided at the "
                       "effects' level, Šidák over the marginal and the conditional rows together; `stop: decided` "
                       "counts such an augmentation decided when all of these are):",
                       a.conditional[["augmentation", "given", "effect", "ci_low", "ci_high", "verdict"]]]
        out.append(Section("Augmentation x augmentation interactions", blocks))
    if a.configurations is not None and len(a.configurations):
        out.append(Section("Configurations by their mean", [
            f"Distinct configurations (depth and augmentations on; magnitudes averaged as in the effects), best "
            f"mean first, over every seed replicate that decided the verdicts. `diff_vs_none`: paired by seed "
            f"against no augmentation, simultaneous over the {a.configurations.attrs.get('n_family', 0)} "
            f"configurations compared (Šidák) at their share of the sweep's alpha (one verdict row in the split; "
            f"look level {a.configurations_alpha:.3g}), so naming the best afterwards costs no extra error.",
            a.configurations.head(10)]))
    if a.unconverged is not None:
        conv = exp.train.until_converged
        t = a.unconverged.attrs
        out.append(Section("Convergence", [
            f"`train.until_converged`: each training stopped once val_loss had not improved for {conv.patience} "
            f"epochs (cap {conv.max_epochs}); the outcome is its converged best. {t['unconverged']} of "
            f"{t['trainings']} trainings hit the cap unconverged (median epochs run: {t['median_epochs_run']:.0f}).",
            a.unconverged]))
    return out


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
    if len(curves) and analysis.table is not None and len(analysis.table):
        analysis.by_budget, analysis.moving = budget_mod.analyse_budget(
            curves, analysis.table, analysis.full, analysis.augmentations, exp.train.epochs, exp.equivalence_margin)
        if len(analysis.by_budget):
            figures["budget"] = plots.effect_vs_budget(analysis.by_budget, out_dir / "effect_vs_budget.png",
                                                       exp.train.epochs)
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

    from ..experiment.design import plan_for

    n = len(exp.search_space.augmentation_names)
    rows = n * (2 if len(depth_levels(exp.search_space)) > 1 and not exp.model.uses_base else 1)
    if exp.sampler == "factorial" and n >= 2:
        plan = plan_for(exp.search_space, exp.trials, sequential=exp.stop == "decided")
        if plan.resolution is None or plan.resolution >= 5:  # aug x aug contrasts are separable: tested
            rows += n * (n - 1) // 2
        rows += 1  # the configurations against none: one row, Šidák over them inside its share
    return rows
