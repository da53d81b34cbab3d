"""The sweep's part of the report, analysis (pure: no stores): the effects under the one verdict rule and the
descriptive views, as one `Analysis` (`analyse_sweep` from a loaded `SweepData`); `effects_table` is the
`effects.csv` contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import inference
from ..experiment.schema import ConfigError, Experiment
from ..experiment.space import aug_key
from ..learned import LearnedCheck, check_learned
from . import budget as budget_mod
from . import configurations as configurations_mod
from . import stats
from .inputs import SweepData

EFFECT_COLUMNS = ["augmentation", "effect", "ci_low", "ci_high", "p_value", "n_with", "n_without", "verdict", "source",
                  "comparison", "mde", "ci_method"]
FLOAT = "%.6f"

def effects_table(frame: pd.DataFrame, source: str = "sweep", comparison: str = "adjusted (all trials)"
                  ) -> pd.DataFrame:
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
    alpha: float = 0.05  # the report's one alpha (the stopping rule's too)
    pairs: pd.DataFrame | None = None  # augmentation x augmentation contrasts (a design that separates them)
    conditional: pd.DataFrame | None = None  # conditional effects of the augmentations in decided pairs
    configurations: pd.DataFrame | None = None  # configurations.csv: distinct configurations by their mean
    configurations_alpha: float = 0.0  # the configurations' look level (Šidák over them inside it)
    by_budget: pd.DataFrame | None = None  # effects_by_budget.csv (descriptive), set once the curves are read
    moving: pd.DataFrame | None = None  # per augmentation: is its effect still moving at the end of the budget?
    unconverged: pd.DataFrame | None = None  # train.until_converged: trainings that hit the cap, per augmentation
    table: pd.DataFrame | None = None  # the rows that decided the verdicts (complete replicates, finished blocks)
    learned: LearnedCheck | None = None  # the gate before any verdict (None: the stores hold no chance loss)
    num_classes: int | None = None
    rule: inference.VerdictRule | None = None  # the sweep's verdict rule (`VerdictRule.for_sweep`)
    followup_alpha: float = 0.0  # an ablation's level in the same report (its part of the configurations' node)

    @property
    def did_not_learn(self) -> bool:
        """The network did not learn: every verdict is withheld, nothing is exported or registered."""
        return self.learned is not None and not self.learned.ok

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
        on = table[aug_key(a)].astype(bool)
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
        on = table[aug_key(a)].astype(bool)
        rows.append({"augmentation": a,
                     "still_improving_with": float(improving[on].mean()) if on.any() else np.nan,
                     "still_improving_without": float(improving[~on].mean()) if (~on).any() else np.nan,
                     "final_gap_with": float(table.loc[on, "gap"].mean()) if on.any() else np.nan,
                     "final_gap_without": float(table.loc[~on, "gap"].mean()) if (~on).any() else np.nan})
    return pd.DataFrame(rows)

def analyse(table: pd.DataFrame, trials: pd.DataFrame, exp: Experiment, design: dict | None = None,
            alpha: float = 0.05, chance: float | None = None, num_classes: int | None = None,
            gate_alpha: float = 0.05, followup_rows: int = 0) -> Analysis:
    """Effects under the one verdict rule, descriptive views (pairs, gap, accuracy, depth), warnings.

    `alpha`: the report's one alpha, the level the stopping rule used too. `followup_rows`: verdict rows of an
    ablation in the same report; they share the configurations' node of the graph (`followup_alpha`), which
    no stopping decision reads, so the rows the sweep stopped on keep their level. A factorial sweep
    decides on the complete seed replicates of its finished blocks only, the data its stopping rule saw.
    `chance`: the loss of guessing; when given, verdicts are withheld unless the network learned (`learned`),
    a gate tested first at the report's `gate_alpha`."""
    augs = exp.search_space.augmentation_names
    counts = {s: int((trials["state"] == s).sum()) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")} \
        if len(trials) else {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0}
    if counts["COMPLETE"] == 0:
        raise ConfigError(f"no finished trials in study {exp.name!r}: nothing to report yet "
                          f"({counts['FAIL']} failed, {counts['PRUNED']} pruned); run `augsweep sweep` first")
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
    rule = inference.VerdictRule.for_sweep(exp, design, alpha)
    verdicts = inference.decide_sweep(table, augs, rule, points=int(design["block_size"]) if design and len(table)
                                      else None, finished=finished, followup=bool(followup_rows))
    left = sorted(set(finished or []) - set(verdicts.blocks_used))
    if points_failed:
        warnings.append(f"{len(points_failed)} design point(s) have no finished training (named below); the "
                        f"seed replicates of their block(s) are incomplete and left out of the verdicts"
                        + (f" (block(s) {', '.join(str(b + 1) for b in left)})." if left else "."))
    # `decided`: the rows behind the verdicts; the descriptive views below use every finished training.
    decided, full, looks, blocks_used = verdicts.table, verdicts.effects, verdicts.looks, list(verdicts.blocks_used)
    alpha_effects = (verdicts.levels or {}).get("effects", alpha)  # the effects' level (descriptive doses use it)
    seed_frame = inference.seed_effects(decided, augs) if len(decided) else None
    doses = inference.dose_responses(decided, augs, alpha=alpha_effects) if len(decided) else None
    seeds = int(decided.groupby(["block", "repeat"]).ngroups) if len(decided) else 0

    def descriptive(outcome: str) -> pd.DataFrame | None:
        if outcome not in table or table[outcome].isna().all():
            return None
        frame = inference.effects(table, augs, rule.share(0.05, max_looks=1), outcome=outcome)
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
    conf_alpha = (verdicts.levels or {}).get("configurations", 0.0)
    followup = 0.0
    if followup_rows:  # the ablation asks the configurations' question again with paired seeds: one node
        conf_alpha, followup = inference.split_alpha(conf_alpha, [1, int(followup_rows)])
    configs = (configurations_mod.configurations(decided, augs, margin=exp.equivalence_margin, alpha_look=conf_alpha,
                                                 shift=verdicts.shift)
               if len(decided) and not decided[[aug_key(a) for a in augs]].astype(bool).any(axis=1).all() else None)
    learned = (check_learned(decided, augs, chance, gate_alpha, margin=exp.equivalence_margin)
               if chance is not None and len(decided) else None)
    pairs, conditional = verdicts.pairs, verdicts.conditional
    if learned is not None and not learned.ok:
        # No verdict about a network that did not learn: every verdict-bearing table says `undecided`.
        full, pairs, conditional, interactions, configs = (
            withhold(f) for f in (full, pairs, conditional, interactions, configs))
    return Analysis(
        augmentations=augs, counts=counts, effects=effects_table(full), full=full,
        budget=budget_table(table, augs) if len(table) else pd.DataFrame(),
        matched=stats.matched_pairs(table, augs, outcome="value"),
        gap=descriptive("gap"), accuracy=descriptive("best_val_accuracy"),
        by_depth=stats.effects_by_depth(table, augs, outcome="value"), interactions=interactions,
        looks=looks, seeds=seeds, warnings=warnings, design=design, doses=doses, seed_frame=seed_frame,
        failed_points=points_failed,
        diverged=verdicts.divergence if verdicts.divergence is not None or not len(table)
        else diverged_table(table, augs),
        blocks_used=blocks_used, alpha=alpha, pairs=pairs, conditional=conditional, learned=learned,
        num_classes=num_classes, rule=rule,
        configurations=configs, configurations_alpha=conf_alpha, table=decided, followup_alpha=followup,
        unconverged=unconverged_table(table, augs, exp) if len(table) else None,
    )

def withhold(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """A verdict table with every decided verdict replaced by `undecided` (a baseline row stays a baseline)."""
    if frame is None or "verdict" not in frame:
        return frame
    out = frame.copy()
    out.attrs.update(frame.attrs)
    out.loc[out["verdict"].isin(["helps", "hurts", "negligible"]), "verdict"] = "undecided"
    return out

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
        on = table[aug_key(a)].astype(bool)
        rows.append({"augmentation": a, "unconverged_with": int(capped[on].sum()), "trainings_with": int(on.sum()),
                     "unconverged_without": int(capped[~on].sum()), "trainings_without": int((~on).sum()),
                     "median_epochs_with": float(table.loc[on, "epochs_run"].median()) if on.any() else np.nan,
                     "median_epochs_without": float(table.loc[~on, "epochs_run"].median()) if (~on).any() else np.nan})
    out = pd.DataFrame(rows[1:])
    out.attrs.update(rows[0])
    return out

def missing_curves(trials: pd.DataFrame, curves: pd.DataFrame) -> list[int]:
    """Numbers of the COMPLETE trials whose history the report could not read."""
    done = trials.loc[trials["state"] == "COMPLETE", "trial"].astype(int) if len(trials) else pd.Series(dtype=int)
    have = set(curves["trial"].astype(int)) if len(curves) else set()
    return sorted(n for n in done if n not in have)


def analyse_sweep(exp: Experiment, data: SweepData, alpha: float = 0.05, followup_rows: int = 0) -> Analysis:
    """`analyse` on the loaded sweep, then what needs the curves (the epoch budget) and what the loading could
    not read (curves, provenance), said in the warnings."""
    analysis = analyse(data.trainings, data.trials, exp, data.design, alpha=alpha, chance=data.chance,
                       num_classes=data.num_classes, followup_rows=followup_rows)
    missing = missing_curves(data.trials, data.curves)
    if missing:
        analysis.warnings.append(
            f"{len(missing)} complete trial(s) have no curves in MLflow ({', '.join(f't{n:02d}' for n in missing[:10])}"
            f"{', …' if len(missing) > 10 else ''}): their results count in the effects, but their curves are "
            "missing from the figures (a run written by an older version, or an artifact store that lost them).")
    if data.parent.problem:
        analysis.warnings.append(f"Provenance incomplete: {data.parent.problem}; the Provenance section says "
                                 "`unknown` for what it could not read.")
    if len(data.curves) and analysis.table is not None and len(analysis.table):
        analysis.by_budget, analysis.moving = budget_mod.analyse_budget(
            data.curves, analysis.table, analysis.full, analysis.augmentations, exp.train.epochs, analysis.rule)
    return analysis
