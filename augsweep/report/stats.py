"""Which augmentation changed validation loss: adjusted effects, matched pairs and per-depth means.

Pure functions over tidy tables (one row per trial x repeat, or per ablation variant x seed); no I/O,
and no randomness beyond the bootstrap's fixed seed, so a report regenerates byte for byte.
The trial is the unit of evidence: repeats of one trial share its configuration (and whatever the
sweep did not model, such as its learning rate), so they are averaged before any inference.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

_EFFECT_COLUMNS = ["augmentation", "effect", "ci_low", "ci_high", "p_value", "p_raw",
                   "n_with", "n_without", "verdict", "method", "note"]
_PAIR_COLUMNS = ["augmentation", "n_pairs", "mean_diff", "ci_low", "ci_high", "p_value", "verdict"]
_DEPTH_COLUMNS = ["augmentation", "depth", "mean_with", "mean_without", "difference", "n_with", "n_without"]
METHOD = "OLS on trial means, HC3, t"


class InsufficientData(ValueError):
    """Too few finished trials to fit the model (residual df < 1)."""


def verdict(ci_low: float, ci_high: float) -> str:
    """'helps' if the whole CI is below 0 (lower loss), 'hurts' if above 0, else 'no clear effect'."""
    if ci_high < 0:
        return "helps"
    if ci_low > 0:
        return "hurts"
    return "no clear effect"  # also when either bound is NaN


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-corrected p-values; NaNs stay NaN and are not counted as tests."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def _prepare(table: pd.DataFrame, augmentations: Sequence[str], outcome: str) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The columns we use, aug indicators as bool, rows without an outcome dropped."""
    names = list(dict.fromkeys(augmentations))
    cols = [f"aug_{a}" for a in names]
    missing = [c for c in ["trial", "repeat", outcome, *cols] if c not in table.columns]
    if missing:
        raise KeyError(f"table lacks column(s) {missing}")
    df = table[["trial", "repeat", outcome, *cols] + (["depth"] if "depth" in table.columns else [])].copy()
    if "depth" not in df:
        df["depth"] = 0
    df[cols] = df[cols].fillna(False).astype(bool)
    df = df[df[outcome].notna()].sort_values(["trial", "repeat"], kind="stable").reset_index(drop=True)
    return df, names, cols


def _sort(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Best (most negative) first, NaN last, ties by name so the order is stable."""
    return frame.sort_values([by, "augmentation"], na_position="last", kind="stable").reset_index(drop=True)


def _design(trials: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Intercept + aug indicators + depth fixed effects (when depth varies), one row per trial."""
    parts = [pd.Series(1.0, index=trials.index, name="const"), trials[cols].astype(float)]
    if trials["depth"].nunique() > 1:
        parts.append(pd.get_dummies(trials["depth"], prefix="depth", drop_first=True, dtype=float))
    return pd.concat(parts, axis=1)


def _lstsq(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-norm LS coefficients, which of them the design identifies, and a null-space basis."""
    u, s, vt = np.linalg.svd(X, full_matrices=False)
    rank = int((s > s[0] * max(X.shape) * np.finfo(float).eps).sum())
    v = vt[:rank].T
    beta = v @ ((u[:, :rank].T @ y) / s[:rank])
    # coefficient k is estimable iff e_k lies in the row space, i.e. its projection keeps norm 1
    identified = (v**2).sum(axis=1) > 1 - 1e-6
    return beta, identified, vt[rank:]


def _hc3_t(X: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """HC3 p-values and CIs with t inference (residual df), plus which coefficients still have a standard error."""
    keep = np.ones(len(y), dtype=bool)
    while True:
        # a row with leverage 1 has residual 0 and makes HC3 divide 0 by 0 (NaN everywhere);
        # it fits its own parameter exactly, so dropping it leaves the other estimates (and the
        # residual df: n and the rank both drop by one) unchanged
        h = np.einsum("ij,ji->i", X[keep], np.linalg.pinv(X[keep]))
        exact = h > 1 - 1e-8
        if not exact.any():
            break
        keep[np.flatnonzero(keep)[exact]] = False
    nan = np.full(X.shape[1], np.nan)
    if not keep.any():
        return nan, nan, nan, np.zeros(X.shape[1], dtype=bool)
    has_se = _lstsq(X[keep], y[keep])[1]
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        res = sm.OLS(y[keep], X[keep]).fit(cov_type="HC3", use_t=True)
        ci = np.asarray(res.conf_int(alpha))
        p = np.asarray(res.pvalues, dtype=float)
    return p, ci[:, 0], ci[:, 1], has_se


def _confounders(null: np.ndarray, k: int, labels: list[str]) -> list[str]:
    """Names of the factors that column k is collinear with (from the design's null space)."""
    tol = 1e-8
    involved = (np.abs(null[:, [k]]) > tol) & (np.abs(null) > tol)
    names = [labels[j] for j in np.flatnonzero(involved.any(axis=0)) if j != k]
    return list(dict.fromkeys(n for n in names if n != "const"))


def adjusted_effects(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = "value",
                     alpha: float = 0.05) -> pd.DataFrame:
    """Effect of turning each augmentation on, adjusted for the others and depth.

    OLS of each trial's mean outcome (over its repeats) on the 0/1 augmentation indicators plus depth
    fixed effects, HC3 standard errors, t inference on the residual df; p-values Holm-corrected.
    """
    df, names, cols = _prepare(table, augmentations, outcome)
    trials = df.groupby("trial").agg(y=(outcome, "mean"), depth=("depth", "first"),
                                     **{c: (c, "first") for c in cols})
    n_with, n_trials = trials[cols].sum(), len(trials)
    notes = {c: "" for c in cols}
    for c in cols:
        if n_with[c] == n_trials:
            notes[c] = "always on in this sweep: no trials without it"
        elif n_with[c] == 0:
            notes[c] = "never on in this sweep: no trials with it"
    varying = [c for c in cols if not notes[c]]

    design = _design(trials, varying)
    X, y = design.to_numpy(), trials["y"].to_numpy(dtype=float)
    # no trials at all: treat every parameter as needing one (rank = columns), which raises below
    beta, identified, null = _lstsq(X, y) if n_trials else (None, None, np.empty((0, X.shape[1])))
    rank = X.shape[1] - len(null)  # residual df = trials - rank
    if n_trials - rank < 1:
        raise InsufficientData(
            f"{n_trials} finished trials for {rank} estimable model parameters "
            f"({design.shape[1]} in the design); need at least {rank + 1} trials: run more trials")
    labels = ["const", *(c[4:] for c in varying)] + ["depth"] * (design.shape[1] - 1 - len(varying))

    p_raw, lo, hi, has_se = _hc3_t(X, y, alpha)
    pos = {c: i for i, c in enumerate(design.columns)}
    for c in varying:
        k = pos[c]
        if not identified[k]:
            others = _confounders(null, k, labels)
            with_ = f"collinear with {', '.join(others)}" if others else "collinear with other factors"
            notes[c] = f"{with_} in this sweep: effect cannot be separated"
        elif not has_se[k]:
            notes[c] = "rests on a single trial: no standard error"

    rows = []
    for a, c in zip(names, cols):
        k = pos.get(c)
        est = k is not None and bool(identified[k])
        ci = (lo[k], hi[k]) if est and has_se[k] else (np.nan, np.nan)
        rows.append(dict(augmentation=a, effect=beta[k] if est else np.nan, ci_low=ci[0], ci_high=ci[1],
                         p_raw=p_raw[k] if est and has_se[k] else np.nan,
                         n_with=int(n_with[c]), n_without=int(n_trials - n_with[c]),
                         verdict=verdict(*ci), method=METHOD, note=notes[c]))
    out = pd.DataFrame(rows, columns=[c for c in _EFFECT_COLUMNS if c != "p_value"])
    out.insert(4, "p_value", holm(out["p_raw"]))
    return _sort(out, "effect")[_EFFECT_COLUMNS]


def matched_pairs(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = "value",
                  alpha: float = 0.05) -> pd.DataFrame:
    """Mean outcome(with) - outcome(without) over trial pairs that differ only in that augmentation.

    CI: t-interval over the per-pair differences (each averaged over repeats); p: Wilcoxon signed-rank.
    """
    df, names, cols = _prepare(table, augmentations, outcome)
    keys = ["depth", *cols]
    # identical configurations (TPE repeats them) are averaged into one cell per repeat
    cells = df.groupby(keys + ["repeat"])[outcome].mean().rename("y").reset_index()
    rows = []
    for a, c in zip(names, cols):
        others = [k for k in keys if k != c]
        m = cells[cells[c]].drop(columns=c).merge(
            cells[~cells[c]].drop(columns=c), on=others + ["repeat"], suffixes=("_with", "_without"))
        d = (m["y_with"] - m["y_without"]).groupby([m[k] for k in others]).mean().to_numpy()
        ci, p = (np.nan, np.nan), np.nan
        if len(d) >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # identical differences: scipy warns about precision loss
                ci = tuple(sps.ttest_1samp(d, 0.0).confidence_interval(1 - alpha))
            if np.any(d != 0):
                p = float(sps.wilcoxon(d).pvalue)
        rows.append(dict(augmentation=a, n_pairs=len(d), mean_diff=d.mean() if len(d) else np.nan,
                         ci_low=ci[0], ci_high=ci[1], p_value=p, verdict=verdict(*ci)))
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

_ABLATION_COLUMNS = ["augmentation", "comparison", "n_pairs", "effect", "ci_low", "ci_high", "p_value",
                     "p_raw", "p_wilcoxon", "verdict", "with_variant", "without_variant"]
ABLATION_METHOD = ("paired by seed: mean difference, 95% percentile bootstrap CI, paired t-test and Wilcoxon "
                   "signed-rank p, Holm-corrected")
BOOTSTRAP_RESAMPLES = 9999


def bootstrap_ci(d: np.ndarray, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `d` (seeded, so reports are reproducible)."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return (np.nan, np.nan)
    if np.all(d == d[0]):
        return (float(d[0]), float(d[0]))
    res = sps.bootstrap((d,), np.mean, confidence_level=1 - alpha, n_resamples=BOOTSTRAP_RESAMPLES,
                        method="percentile", rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of `d` (exact for small n); 1 when every difference is 0."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return np.nan
    if not np.any(d != 0):
        return 1.0
    return float(sps.wilcoxon(d).pvalue)


def paired_t_p(d: np.ndarray) -> float:
    """Two-sided one-sample t-test p of the mean of `d` against 0 (NaN below 2 pairs or when all are 0)."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2 or not np.any(d):
        return np.nan
    if np.all(d == d[0]):
        return 0.0  # identical non-zero differences: no spread, no doubt about the sign
    return float(sps.ttest_1samp(d, 0.0).pvalue)


def paired_effects(runs: pd.DataFrame, comparisons: pd.DataFrame, outcome: str = "best_val_loss",
                   alpha: float = 0.05) -> pd.DataFrame:
    """Per augmentation and comparison: outcome(with) - outcome(without), paired by seed.

    `runs`: one row per variant x seed (columns `variant`, `seed`, `outcome`). `comparisons`: one row
    per augmentation x comparison naming the variant `with` it and the one `without` it (e.g.
    leave-one-out: with=base, without=base-flip). Negative effect = the augmentation lowered the outcome.

    The CI is a percentile bootstrap of the mean difference. A bootstrap never reaches beyond the
    observed differences, so with few seeds it excludes 0 whenever they share a sign (2 seeds: half the
    time under no effect); the verdict therefore also needs the Holm-corrected paired t-test (`p_value`)
    below `alpha`. The Wilcoxon p (`p_wilcoxon`, Holm-corrected) is the distribution-free check; it cannot
    fall below 0.05 with fewer than 6 seeds. Holm runs across augmentations within each comparison.
    """
    values = runs.dropna(subset=[outcome]).set_index(["variant", "seed"])[outcome]
    present = set(values.index.get_level_values(0))
    rows = []
    for c in comparisons.itertuples(index=False):
        if c.with_variant in present and c.without_variant in present:
            w, wo = values.xs(c.with_variant, level="variant"), values.xs(c.without_variant, level="variant")
            both = w.index.intersection(wo.index).sort_values()
            d = (w.loc[both] - wo.loc[both]).to_numpy(dtype=float)
        else:
            d = np.array([])
        ci = bootstrap_ci(d, alpha)
        rows.append(dict(augmentation=c.augmentation, comparison=c.comparison, n_pairs=len(d),
                         effect=float(d.mean()) if len(d) else np.nan, ci_low=ci[0], ci_high=ci[1],
                         p_raw=paired_t_p(d), p_wilcoxon=wilcoxon_p(d), with_variant=c.with_variant,
                         without_variant=c.without_variant))
    out = pd.DataFrame(rows, columns=[c for c in _ABLATION_COLUMNS if c not in ("p_value", "verdict")])
    out.insert(6, "p_value", np.nan)
    for _, idx in out.groupby("comparison").groups.items():
        out.loc[idx, "p_value"] = holm(out.loc[idx, "p_raw"])
        out.loc[idx, "p_wilcoxon"] = holm(out.loc[idx, "p_wilcoxon"])
    out["verdict"] = [verdict(lo, hi) if p < alpha else "no clear effect"
                      for lo, hi, p in zip(out["ci_low"], out["ci_high"], out["p_value"].fillna(1.0))]
    return out.sort_values(["comparison", "effect", "augmentation"], na_position="last",
                           kind="stable").reset_index(drop=True)[_ABLATION_COLUMNS]


def per_class_effects(per_class: pd.DataFrame, comparisons: pd.DataFrame) -> pd.DataFrame:
    """Per augmentation and class: mean paired change (with - without) in class loss and accuracy.

    `per_class`: one row per variant x seed x class with `val_loss` and `val_accuracy`. Adds
    `worst` = True on the class whose loss the augmentation raises most (or lowers least).
    """
    keyed = per_class.set_index(["variant", "seed", "class"])[["val_loss", "val_accuracy"]]
    rows = []
    for c in comparisons.itertuples(index=False):
        if c.with_variant not in keyed.index.get_level_values(0) or c.without_variant not in keyed.index.get_level_values(0):
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
        worst = out.groupby(["augmentation", "comparison"])["loss_change"].idxmax().dropna()
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
