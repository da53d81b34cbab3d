"""Descriptive tables beside the verdicts: same-pattern pairs, per-depth means, per-class changes, affinity.

Pure functions over tidy tables (one row per trial x repeat, or per ablation variant x seed); no I/O and
no randomness. None of them carries a verdict: `augsweep.inference` is the one verdict rule.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from .. import inference

_PAIR_COLUMNS = ["augmentation", "n_pairs", "mean_diff", "ci_low", "ci_high"]
_DEPTH_COLUMNS = ["augmentation", "depth", "mean_with", "mean_without", "difference", "n_with", "n_without"]


def _prepare(table: pd.DataFrame, augmentations: Sequence[str], outcome: str
             ) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The columns we use, aug indicators as bool, rows without an outcome dropped, by trial and repeat."""
    return inference.scored_trainings(table, augmentations, outcome, keys=("trial", "repeat"))


def _sort(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Best (most negative) first, NaN last, ties by name so the order is stable."""
    return frame.sort_values([by, "augmentation"], na_position="last", kind="stable").reset_index(drop=True)


def matched_pairs(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = "value",
                  alpha: float = 0.05) -> pd.DataFrame:
    """Descriptive: mean outcome(with) - outcome(without) over trial pairs with the same on/off pattern of the
    other augmentations, the same depth and the same seeds (block and repeat); magnitudes may differ.
    The t-interval over pairs is unadjusted and carries no verdict (`inference` decides)."""
    df, names, cols = _prepare(table, augmentations, outcome)
    keys = ["depth", *(["block"] if "block" in df else []), *cols]
    # identical configurations (TPE repeats them) are averaged into one cell per repeat
    cells = df.groupby(keys + ["repeat"])[outcome].mean().rename("y").reset_index()
    rows = []
    for a, c in zip(names, cols):
        others = [k for k in keys if k != c]
        m = cells[cells[c]].drop(columns=c).merge(
            cells[~cells[c]].drop(columns=c), on=others + ["repeat"], suffixes=("_with", "_without"))
        d = (m["y_with"] - m["y_without"]).groupby([m[k] for k in others]).mean().to_numpy()
        ci = (np.nan, np.nan)
        if len(d) >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # identical differences: scipy warns about precision loss
                ci = tuple(sps.ttest_1samp(d, 0.0).confidence_interval(1 - alpha))
        rows.append(dict(augmentation=a, n_pairs=len(d), mean_diff=d.mean() if len(d) else np.nan,
                         ci_low=ci[0], ci_high=ci[1]))
    return _sort(pd.DataFrame(rows, columns=_PAIR_COLUMNS), "mean_diff")


def effects_by_depth(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = "value") -> pd.DataFrame:
    """Per augmentation and depth: mean outcome (trial means) with vs without, their difference and trial counts."""
    df, names, cols = _prepare(table, augmentations, outcome)
    per_trial = df.groupby("trial").agg({outcome: "mean", "depth": "first", **{c: "first" for c in cols}})
    rows = []
    for a, c in zip(names, cols):
        for depth, g in per_trial.groupby("depth"):
            w, wo = g.loc[g[c], outcome], g.loc[~g[c], outcome]
            rows.append(dict(augmentation=a, depth=depth, mean_with=w.mean(), mean_without=wo.mean(),
                             difference=w.mean() - wo.mean(), n_with=len(w), n_without=len(wo)))
    return pd.DataFrame(rows, columns=_DEPTH_COLUMNS)


# ----------------------------------------------------------------------------- paired ablation

def per_class_effects(per_class: pd.DataFrame, comparisons: pd.DataFrame) -> pd.DataFrame:
    """Per augmentation and class: mean paired change (with - without) in class loss and accuracy.

    `per_class`: one row per variant x seed x class with `val_loss` and `val_accuracy`. Adds
    `worst` = True on the class whose loss the augmentation raises most (or lowers least).
    """
    keyed = per_class.set_index(["variant", "seed", "class"])[["val_loss", "val_accuracy"]]
    rows = []
    for c in comparisons.itertuples(index=False):
        variants = keyed.index.get_level_values(0)
        if c.with_variant not in variants or c.without_variant not in variants:
            continue
        w, wo = keyed.xs(c.with_variant, level="variant"), keyed.xs(c.without_variant, level="variant")
        both = w.index.intersection(wo.index)
        diff = (w.loc[both] - wo.loc[both]).groupby(level="class", sort=False).agg(["mean", "count"])
        for cls, r in diff.iterrows():
            rows.append(dict(augmentation=c.augmentation, comparison=c.comparison, **{"class": cls},
                             n_pairs=int(r[("val_loss", "count")]), loss_change=float(r[("val_loss", "mean")]),
                             accuracy_change=float(r[("val_accuracy", "mean")])))
    out = pd.DataFrame(rows, columns=["augmentation", "comparison", "class", "n_pairs", "loss_change",
                                      "accuracy_change"])
    out["worst"] = False
    if len(out):
        # A comparison whose trainings all diverged has no finite class loss: no worst class (pandas refuses an
        # all-NA idxmax).
        finite = out.dropna(subset=["loss_change"])
        worst = finite.groupby(["augmentation", "comparison"])["loss_change"].idxmax()
        out.loc[worst.astype(int), "worst"] = True
    return out


def affinity_diversity(runs: pd.DataFrame, affinity: pd.DataFrame, additions: pd.DataFrame) -> pd.DataFrame:
    """Affinity and diversity per augmentation (Gontijo-Lopes et al., 2020).

    `affinity`: per seed x augmentation, `affinity` of the no-augmentation model (clean / augmented
    validation loss). Diversity = final training loss with the augmentation alone / without any,
    paired by seed (from `runs`' `final_loss`; `additions` maps augmentation -> with/without variant).
    """
    final = runs.set_index(["variant", "seed"])["final_loss"]
    rows = []
    for c in additions.itertuples(index=False):
        aff = affinity.loc[affinity["augmentation"] == c.augmentation, "affinity"]
        div = np.nan
        if c.with_variant in final.index.get_level_values(0) and c.without_variant in final.index.get_level_values(0):
            w, wo = final.xs(c.with_variant, level="variant"), final.xs(c.without_variant, level="variant")
            both = w.index.intersection(wo.index)
            if len(both):
                div = float((w.loc[both] / wo.loc[both]).mean())
        rows.append(dict(augmentation=c.augmentation, affinity=float(aff.mean()) if len(aff) else np.nan,
                         diversity=div))
    return pd.DataFrame(rows, columns=["augmentation", "affinity", "diversity"])
