"""The ablation's part of the report, analysis (pure: no stores): paired effects under the one verdict rule,
their interaction contrasts, baselines, per-class effects and affinity/diversity, from an `AblationData`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import inference
from ..experiment.variants import ADD_ONE_IN, LEAVE_ONE_OUT, comparison_table
from ..learned import check_wide, not_learned_line
from . import stats
from .inputs import AblationData
from .sweep_analysis import withhold

__all__ = ["ADD_ONE_IN", "LEAVE_ONE_OUT", "AblationAnalysis", "analyse_ablation", "baselines_table", "disagreements",
           "effects_rows", "family_size", "interactions", "primary_rows", "side_by_side"]

BASELINES = ("none", "base", "randaugment", "trivialaugment")


@dataclass
class AblationAnalysis:
    """Paired effects (both comparisons), the primary one per augmentation, and the secondary views."""

    paired: pd.DataFrame
    primary: pd.DataFrame
    baselines: pd.DataFrame
    per_class: pd.DataFrame
    affinity: pd.DataFrame
    disagreements: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    margin: float = 0.02


def primary_rows(paired: pd.DataFrame) -> pd.DataFrame:
    """One row per augmentation: leave-one-out where the base has it (the effect in the configuration
    you would use), add-one-in otherwise."""
    usable = paired[paired["n_pairs"] > 0].copy()
    usable["_rank"] = (usable["comparison"] != LEAVE_ONE_OUT).astype(int)
    first = usable.sort_values(["augmentation", "_rank"], kind="stable").groupby("augmentation").head(1)
    first = first.drop(columns="_rank")
    return first.sort_values(["effect", "augmentation"], na_position="last", kind="stable").reset_index(drop=True)


def interactions(runs: pd.DataFrame, comparisons: pd.DataFrame, margin: float, alpha: float = 0.05) -> pd.DataFrame:
    """Per augmentation with both comparisons: the paired interaction contrast (leave-one-out effect minus
    add-one-in effect, seed by seed), decided across seeds under the same rule as the effects."""
    both = comparisons.groupby("augmentation").filter(lambda g: set(g["comparison"]) >= {LEAVE_ONE_OUT, ADD_ONE_IN})
    if not len(both):
        return pd.DataFrame(columns=["augmentation", "effect", "ci_low", "ci_high", "p_value", "verdict"])
    wide = runs.groupby(["seed", "variant"])["best_val_loss"].mean().unstack("variant")
    named = set(both["with_variant"]) | set(both["without_variant"])
    # A variant whose every training failed has no column: NaN (no pair), never None (None - None: TypeError).
    wide = wide.reindex(columns=sorted(set(wide.columns) | named))
    rows = []
    for aug, g in both.groupby("augmentation", sort=True):
        loo = g[g["comparison"] == LEAVE_ONE_OUT].iloc[0]
        add = g[g["comparison"] == ADD_ONE_IN].iloc[0]
        # d = (base - base-a) - (none+a - none): a per-seed difference of differences, expressed as
        # two pseudo-variants so the ablation rule decides it.
        rows.append((aug, (wide.get(loo.with_variant) - wide.get(loo.without_variant))
                     - (wide.get(add.with_variant) - wide.get(add.without_variant))))
    pseudo = pd.concat([pd.DataFrame({"seed": d.index, "variant": f"interaction:{a}", "best_val_loss": d.values})
                        for a, d in rows] + [pd.DataFrame({"seed": wide.index, "variant": "zero",
                                                           "best_val_loss": 0.0})], ignore_index=True)
    comps = pd.DataFrame({"augmentation": [a for a, _ in rows], "comparison": "interaction",
                          "with_variant": [f"interaction:{a}" for a, _ in rows], "without_variant": "zero"})
    return inference.ablation_effects(pseudo.dropna(), comps, margin, alpha)


def disagreements(paired: pd.DataFrame, contrasts: pd.DataFrame | None = None) -> list[str]:
    """Augmentations that interact with the rest of the base: only where the paired interaction contrast
    is decided (helps/hurts) across seeds, never from two verdicts that merely differ."""
    out = []
    if contrasts is None or not len(contrasts):
        return out
    for r in contrasts.itertuples(index=False):
        if r.verdict not in ("helps", "hurts"):
            continue
        rows = {c.comparison: c for c in paired[paired["augmentation"] == r.augmentation].itertuples(index=False)}
        loo, add = rows.get(LEAVE_ONE_OUT), rows.get(ADD_ONE_IN)
        out.append(f"{r.augmentation}: leave-one-out {loo.effect:+.4f} vs add-one-in {add.effect:+.4f}; the "
                   f"difference {r.effect:+.4f} (CI [{r.ci_low:+.4f}, {r.ci_high:+.4f}]) is decided across seeds, "
                   f"so its effect depends on the other augmentations in the base (they interact); quote the "
                   f"leave-one-out row for the base configuration.")
    return out


def baselines_table(runs: pd.DataFrame) -> pd.DataFrame:
    """No-aug, base, RandAugment, TrivialAugment-style: mean ± std over seeds."""
    rows = []
    for name in BASELINES:
        g = runs[runs["variant"] == name]
        if not len(g):
            continue
        rows.append({"variant": name, "seeds": len(g), "best_val_loss_mean": g["best_val_loss"].mean(),
                     "best_val_loss_std": g["best_val_loss"].std(ddof=1) if len(g) > 1 else np.nan,
                     "best_val_accuracy_mean": g["best_val_accuracy"].mean(),
                     "best_val_accuracy_std": g["best_val_accuracy"].std(ddof=1) if len(g) > 1 else np.nan})
    return pd.DataFrame(rows)


def side_by_side(paired: pd.DataFrame) -> pd.DataFrame:
    """One row per augmentation: leave-one-out and add-one-in effect and verdict, and whether they agree."""
    rows = []
    for aug, g in paired[paired["n_pairs"] > 0].groupby("augmentation", sort=True):
        r = {c.comparison: c for c in g.itertuples(index=False)}
        loo, add = r.get(LEAVE_ONE_OUT), r.get(ADD_ONE_IN)
        rows.append({"augmentation": aug,
                     "leave-one-out": loo.effect if loo else np.nan, "loo verdict": loo.verdict if loo else "",
                     "add-one-in": add.effect if add else np.nan, "add verdict": add.verdict if add else "",
                     "agree": "" if not (loo and add) else
                     ("yes" if loo.verdict == add.verdict and np.sign(loo.effect) == np.sign(add.effect) else "no")})
    return pd.DataFrame(rows)


def family_size(data: AblationData) -> int:
    """Verdict rows the ablation carries: its paired comparisons and the interaction contrasts."""
    comps = comparison_table(data.spec["variants"])
    both = comps.groupby("augmentation")["comparison"].nunique()
    return len(comps) + int((both >= 2).sum())


def analyse_ablation(data: AblationData, margin: float, alpha: float = 0.05,
                     gate_alpha: float = 0.05) -> AblationAnalysis:
    """Pure: paired statistics, baselines, per-class effects and affinity/diversity from the loaded runs."""
    comps = comparison_table(data.spec["variants"])
    both = comps.groupby("augmentation")["comparison"].nunique()
    # One family for the section: the paired effects and the interaction contrasts share alpha.
    alpha_paired, alpha_contrast = inference.split_alpha(alpha, [len(comps), int((both >= 2).sum())])
    paired = inference.ablation_effects(data.runs, comps, margin, alpha_paired)
    paired["n_pairs"] = paired["n_seeds"]
    primary = primary_rows(paired)
    per_class = stats.per_class_effects(data.per_class, comps) if len(data.per_class) else pd.DataFrame()
    if len(per_class):
        keep = primary[["augmentation", "comparison"]]
        per_class = per_class.merge(keep, on=["augmentation", "comparison"])
    additions = comps[comps["comparison"] == ADD_ONE_IN]
    aff = stats.affinity_diversity(data.runs, data.affinity, additions)
    add_effects = paired[paired["comparison"] == ADD_ONE_IN][["augmentation", "effect", "verdict"]]
    aff = aff.merge(add_effects, on="augmentation", how="left")
    warns = []
    seeds = int(data.spec.get("repeats", 0))
    if seeds < 2:
        warns.append("One seed per variant: there is no seed-to-seed spread to estimate, so no verdict can be "
                     "honest and every row is `undecided`; rerun with `--repeats 5` or more.")
    if len(data.failed):
        warns.append(f"{data.failed['seed'].count()} variant x seed training(s) did not finish and are left out "
                     "of the pairs (listed below).")
    contrasts = interactions(data.runs, comps, margin, alpha_contrast) if seeds >= 2 else None
    if data.chance is not None and len(data.runs):
        check = check_wide(data.runs.pivot_table(index="seed", columns="variant", values="best_val_loss"),
                           data.chance, gate_alpha, margin, data.runs["best_val_loss"].to_numpy(dtype=float))
        if not check.ok:  # no verdict about a network that did not learn
            paired, primary = withhold(paired), withhold(primary)
            contrasts = withhold(contrasts)
            warns.insert(0, not_learned_line(check, data.epochs, None, data.image_size, data.num_classes,
                                             consequence="No verdicts from this ablation."))
    return AblationAnalysis(paired, primary, baselines_table(data.runs), per_class, aff,
                            disagreements(paired, contrasts), warns, margin)


def effects_rows(analysis: AblationAnalysis) -> pd.DataFrame:
    """`effects.csv` rows (source=ablation), both comparisons, primary comparison first per augmentation."""
    p = analysis.paired[analysis.paired["n_pairs"] > 0]
    return pd.DataFrame({
        "augmentation": p["augmentation"], "effect": p["effect"], "ci_low": p["ci_low"], "ci_high": p["ci_high"],
        "p_value": p["p_value"], "n_with": p["n_pairs"], "n_without": p["n_pairs"], "verdict": p["verdict"],
        "source": "ablation", "comparison": p["comparison"], "mde": p["mde"], "ci_method": p["ci_method"],
    })
