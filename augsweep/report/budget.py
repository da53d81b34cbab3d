"""The epoch budget: each augmentation's effect at a grid of budgets, from the curves every training logged.

Pure (pandas in, pandas out). The outcome at budget e is the best validation loss within the first e epochs
of each training (what a run of e epochs with early stopping at its best epoch would have kept), so the
effect at the experiment's own epochs is the verdict's effect. The same per-seed rule as the verdicts
(`inference.effects`) estimates every budget; the intervals are descriptive (simultaneous across the
augmentations at each budget, no verdict of their own), so they take no share of the report's alpha.
A verdict is *budget-bound* when its effect is still moving over the last quarter of the budget: the
per-seed change of the effect between three quarters of the budget and the budget has an interval (same
rule, same level as the verdicts) that excludes 0. Nothing is tuned to a dataset: it is the verdict rule
applied to the effect's own trajectory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import inference

BUDGET_COLUMNS = ["augmentation", "epochs", "effect", "ci_low", "ci_high", "n_seeds"]


def budget_grid(epochs: int, points: int = 6) -> list[int]:
    """Budgets from a sixth of the epochs up to all of them (at least 4 when the epochs allow), always
    holding three quarters of the budget (the budget-bound check) and the budget itself."""
    epochs = int(epochs)
    grid = {max(1, round(epochs * i / points)) for i in range(1, points + 1)}
    grid |= {max(1, round(epochs * 0.75)), epochs}
    return sorted(g for g in grid if 1 <= g <= epochs)


def outcomes_at(curves: pd.DataFrame, table: pd.DataFrame, budget: int) -> pd.DataFrame:
    """`table` (trial x repeat) with `best_val_loss` replaced by the best val_loss within `budget` epochs;
    trainings without a curve, or whose curve never reached a finite value by then, keep NaN (left out)."""
    c = curves[curves["epoch"] < budget]
    # History files name a repeat by its seed index or by its position in the trial: take the position.
    pos = c.groupby("trial")["repeat"].rank(method="dense").astype(int) - 1
    best = c.assign(repeat=pos).groupby(["trial", "repeat"])["val_loss"].min()
    key = pd.MultiIndex.from_frame(table[["trial", "repeat"]])
    out = table.copy()
    out["best_val_loss"] = best.reindex(key).to_numpy(dtype=float)
    return out


def table_at(curves: pd.DataFrame, table: pd.DataFrame, budget: int, epochs: int) -> pd.DataFrame:
    """The table's outcomes within `budget` epochs; at the experiment's own epochs the table itself (the
    verdicts' outcomes exactly, scored divergences included)."""
    return table if budget >= epochs else outcomes_at(curves, table, budget)


def budget_effects(curves: pd.DataFrame, table: pd.DataFrame, augmentations: list[str], epochs: int, *,
                   rule: inference.VerdictRule, alpha: float) -> pd.DataFrame:
    """`effects_by_budget.csv`: per augmentation and budget on `budget_grid(epochs)`, the effect on the best
    val_loss within that budget with its (descriptive) simultaneous interval and the seeds behind it: `rule` as
    one look at level `alpha`. With `alpha` the verdicts' look level, the row at the full budget is the
    verdict's effect and interval."""
    rows = []
    if not len(curves) or not len(table):
        return pd.DataFrame(columns=BUDGET_COLUMNS)
    for e in budget_grid(epochs):
        fr = inference.effects(table_at(curves, table, e, epochs), augmentations, rule.share(alpha, max_looks=1))
        for r in fr.itertuples(index=False):
            rows.append({"augmentation": r.augmentation, "epochs": e, "effect": r.effect, "ci_low": r.ci_low,
                         "ci_high": r.ci_high, "n_seeds": int(r.n_seeds)})
    out = pd.DataFrame(rows, columns=BUDGET_COLUMNS)
    return out.sort_values(["augmentation", "epochs"], kind="stable").reset_index(drop=True)


# The still-moving check only ever adds a caution, so it is tested at a liberal level: 5% per augmentation, not
# adjusted for the family. At the verdicts' own per-comparison level (about 1% at the default's size) an effect
# still drifting toward a different verdict went unflagged in half of the reports that needed the caution.
MOVING_LEVEL = 0.05


def still_moving(curves: pd.DataFrame, table: pd.DataFrame, augmentations: list[str], epochs: int, *,
                 alpha_per: float) -> pd.DataFrame:
    """Per augmentation: the per-seed change of its effect from three quarters of the budget to the budget
    (`change`, with its interval at per-comparison level `alpha_per`), and whether it is still `moving`
    (interval excludes 0): `shrinking` toward 0, `growing`, or `reversing` (changing sign). It only ever
    qualifies a verdict (a false "moving" adds a caution, never a claim), so it takes no share of alpha."""
    cols = ["augmentation", "change", "ci_low", "ci_high", "moving", "direction", "at_three_quarters"]
    q = max(1, round(epochs * 0.75))
    if not len(curves) or not len(table) or q >= epochs:
        return pd.DataFrame(columns=cols)
    late = inference.seed_effects(table, augmentations)
    early = inference.seed_effects(outcomes_at(curves, table, q), augmentations)
    keys = ["block", "repeat", "augmentation"]
    both = late.merge(early, on=keys, suffixes=("", "_q"))
    rows = []
    for a in augmentations:
        g = both[both["augmentation"] == a]
        d = (g["effect"] - g["effect_q"]).to_numpy(dtype=float)
        d = d[np.isfinite(d)]
        res = inference.decide_arrays(d[:, None], alpha_per, margin=np.inf)
        lo, hi = float(res["ci_low"][0]), float(res["ci_high"][0])
        moving = bool(np.isfinite(lo) and (lo > 0 or hi < 0))
        end, start = float(g["effect"].mean()), float(g["effect_q"].mean())
        direction = ("reversing" if end * start < 0 else "shrinking" if abs(end) < abs(start) else "growing")
        rows.append({"augmentation": a, "change": float(res["effect"][0]), "ci_low": lo, "ci_high": hi,
                     "moving": moving, "direction": direction if moving else "", "at_three_quarters": start})
    return pd.DataFrame(rows, columns=cols)


def budget_words(verdict: str, effect: float, epochs: int, by_budget: pd.DataFrame, moving: pd.Series | None) -> str:
    """`hurts at 60 epochs (shrinking: +0.34 at 20 -> +0.05 at 60; ...)` for a verdict whose effect is still
    moving at the end of the budget (a `negligible` or `undecided` one too: the budget bounds every word), the
    plain verdict otherwise."""
    if moving is None or not bool(moving.get("moving", False)):
        return verdict
    traj = by_budget.dropna(subset=["effect"]) if by_budget is not None else pd.DataFrame(columns=["effect"])
    if "augmentation" in traj and "augmentation" in moving:
        traj = traj[traj["augmentation"] == moving["augmentation"]]
    if moving["direction"] == "growing":
        traj = traj.iloc[0:0]
    peak = traj.loc[traj["effect"].abs().idxmax()] if len(traj) else None
    start = (f"{peak['effect']:+.3f} at {int(peak['epochs'])}" if peak is not None and int(peak["epochs"]) != epochs
             else f"{moving['at_three_quarters']:+.3f} at {round(epochs * 0.75)}")
    return (f"{verdict} at {epochs} epochs ({moving['direction']}: {start} → {effect:+.3f} at {epochs}; "
            f"still moving over the last quarter of the budget: run longer before generalising it)")


def analyse_budget(curves: pd.DataFrame, table: pd.DataFrame, full: pd.DataFrame, augmentations: list[str],
                   epochs: int, rule: inference.VerdictRule) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(effects_by_budget, still_moving) of a sweep on the rows that decided its verdicts (`table`), under the
    sweep's `rule` at the verdicts' own look level (`full`: the verdict frame), so the last budget reproduces
    the verdicts."""
    if not len(full) or not len(table) or not len(curves):
        return pd.DataFrame(columns=BUDGET_COLUMNS), pd.DataFrame()
    a_look = float(full["alpha_look"].iloc[0])
    by = budget_effects(curves, table, augmentations, epochs, rule=rule, alpha=a_look)
    moving = still_moving(curves, table, augmentations, epochs, alpha_per=MOVING_LEVEL)
    return by, moving


def moving_row(moving: pd.DataFrame, augmentation: str) -> pd.Series | None:
    """The still-moving row of one augmentation (None without one)."""
    if moving is None or not len(moving):
        return None
    row = moving[moving["augmentation"] == augmentation]
    return row.iloc[0] if len(row) else None
