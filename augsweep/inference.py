"""One verdict rule for the whole report: seed-replicated effects, simultaneous intervals, alpha spending.

A sweep runs its design in replicated blocks; within a block every design point is trained with the
same R seeds (common random numbers), so each (block, repeat) is one seed replicate holding a full
design. The seed is the unit of replication: each replicate yields its own effect estimate, and the
interval comes from how those estimates vary from seed to seed. Intervals are simultaneous across the
family (Šidák) and across sequential looks (alpha spending over a known number of looks, combined by
a union bound, so no assumption about how looks correlate is needed). Pure functions, no randomness.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

VERDICTS = ("helps", "hurts", "negligible", "undecided")
DECIDED = frozenset({"helps", "hurts", "negligible"})
EFFECT_COLUMNS = ["augmentation", "effect", "ci_low", "ci_high", "p_value", "n_with", "n_without",
                  "verdict", "mde", "ci_method", "n_seeds"]
EXTRA_COLUMNS = ["se", "sd_seeds", "alpha_look", "n_family", "blocks_to_decide", "note"]
SEED_COLUMNS = ["block", "repeat", "augmentation", "effect", "n_with", "n_without", "n_points"]
POWER = 0.8
SPENDINGS = ("pocock", "obrien-fleming", "linear")
# O'Brien-Fleming-type spending: early looks hold few seed replicates (a t with 1-3 df decides little
# anyway), so almost all of alpha is kept for the looks that can use it.
SPENDING = "obrien-fleming"

_NOTE_FEW = "fewer than 2 seed replicates estimate it: no interval can include seed-to-seed variation"
_NOTE_NONE = "not estimable in any seed replicate (always on, never on, or too few finished trials)"


def spent_alpha(alpha: float, fraction: float, spending: str = SPENDING) -> float:
    """Cumulative error spent by information fraction `fraction` in (0, 1]."""
    t = min(max(float(fraction), 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if spending == "pocock":
        return alpha * math.log1p((math.e - 1.0) * t)
    if spending == "obrien-fleming":
        z = sps.norm.isf(alpha / 2.0)
        return float(min(alpha, 2.0 * sps.norm.sf(z / math.sqrt(t))))
    if spending == "linear":
        return alpha * t
    raise ValueError(f"spending must be one of {SPENDINGS}, not {spending!r}")


@functools.lru_cache(maxsize=4096)  # pure; `blocks_to_decide` asks for the same levels for every row and look
def look_alpha(alpha: float, look: int, max_looks: int, spending: str = SPENDING) -> float:
    """Family-wise level for look `look` of `max_looks`; the levels of all looks sum to `alpha`."""
    if not 1 <= look <= max_looks:
        raise ValueError(f"look {look} is outside 1..{max_looks}")
    return spent_alpha(alpha, look / max_looks, spending) - spent_alpha(alpha, (look - 1) / max_looks, spending)


def sidak_level(alpha_family: float, m: int) -> float:
    """Per-comparison two-sided level that keeps `m` comparisons at family level `alpha_family`."""
    return -math.expm1(math.log1p(-alpha_family) / max(int(m), 1))


def split_alpha(alpha: float, sizes: Sequence[int]) -> list[float]:
    """Šidák shares of `alpha` for verdict tables of these sizes, so that a whole report (every table that
    carries a verdict) errs with probability <= alpha: each table gets 1 - (1 - alpha)^(size / total)."""
    total = sum(max(int(s), 0) for s in sizes)
    if total == 0:
        return [alpha for _ in sizes]
    return [-math.expm1(math.log1p(-alpha) * max(int(s), 0) / total) for s in sizes]


def sweep_alphas(n_augmentations: int, n_depths: int, alpha: float = 0.05) -> tuple[float, float]:
    """(effects, augmentation x depth contrasts) levels of a sweep report: the contrasts are a verdict table
    only when the design has two depths or more, and then share the report's alpha with the effects."""
    n_contrasts = n_augmentations if n_depths > 1 else 0
    a_eff, a_int = split_alpha(alpha, [n_augmentations, n_contrasts])
    return a_eff, (a_int if n_contrasts else 0.0)


def _verdict(n: int, lo: float, hi: float, margin: float) -> str:
    if n < 2 or not (np.isfinite(lo) and np.isfinite(hi)):
        return "undecided"
    # An interval inside the margin band is a decided "no practical effect" even when it excludes 0:
    # a perfectly reproducible 1e-4 change must not be reported as helping or hurting.
    if -margin < lo and hi < margin:
        return "negligible"
    if hi < 0:
        return "helps"
    if lo > 0:
        return "hurts"
    return "undecided"


def _decide(labels: Sequence[str], B: np.ndarray, alpha_look: float, margin: float) -> dict[str, np.ndarray]:
    """Simultaneous t intervals from a (replicates x labels) matrix of per-seed estimates (NaN = none)."""
    ok = np.isfinite(B)
    n = ok.sum(axis=0)
    Bz = np.where(ok, B, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, Bz.sum(axis=0) / np.maximum(n, 1), np.nan)
        dev = np.where(ok, B - mean, 0.0)
        sd = np.where(n > 1, np.sqrt((dev**2).sum(axis=0) / np.maximum(n - 1, 1)), np.nan)
        se = sd / np.sqrt(n)
    tested = n >= 2
    m = max(int(tested.sum()), 1)
    a = sidak_level(alpha_look, m)
    df = np.where(tested, n - 1, 1).astype(float)
    tcrit = np.where(tested, sps.t.isf(a / 2.0, df), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        tstat = np.where(se > 0, np.abs(mean) / np.where(se > 0, se, 1.0), np.where(mean == 0, 0.0, np.inf))
    p_raw = np.where(tested, 2.0 * sps.t.sf(tstat, df), np.nan)
    # Šidák-adjusted, so p_value < alpha_look exactly when the simultaneous interval excludes 0.
    p_adj = np.where(tested, -np.expm1(m * np.log1p(-np.minimum(p_raw, 1.0))), np.nan)
    half = tcrit * se
    lo = np.where(tested, mean - half, np.nan)
    hi = np.where(tested, mean + half, np.nan)
    mde = np.where(tested, (tcrit + sps.t.ppf(POWER, df)) * se, np.nan)
    verdicts = np.array([_verdict(int(n[j]), lo[j], hi[j], margin) for j in range(len(labels))], dtype=object)
    return {"effect": mean, "ci_low": lo, "ci_high": hi, "p_value": p_adj, "verdict": verdicts, "mde": mde,
            "n_seeds": n.astype(int), "se": se, "sd_seeds": sd, "n_family": np.full(len(labels), m),
            "tcrit": tcrit}


def _order(frame: pd.DataFrame, key: str = "augmentation") -> pd.DataFrame:
    """Best (most negative effect) first, NaN last, ties by name, so the order is stable."""
    return frame.sort_values(["effect", key], na_position="last", kind="stable").reset_index(drop=True)


def _fit(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-norm least squares and which coefficients the design identifies."""
    u, s, vt = np.linalg.svd(X, full_matrices=True)
    tol = max(X.shape) * np.finfo(float).eps * (s[0] if s.size else 0.0)
    rank = int((s > tol).sum())
    beta = vt[:rank].T @ ((u[:, :rank].T @ y) / s[:rank])
    null = vt[rank:]
    estimable = np.sqrt((null**2).sum(axis=0)) < 1e-8 if null.size else np.ones(X.shape[1], dtype=bool)
    return beta, estimable


def tidy(table: pd.DataFrame, augmentations: Sequence[str], outcome: str,
         keys: Sequence[str] = ("block", "repeat")) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The columns an analysis uses (`keys`, outcome, `aug_<name>` as bool, depth; 0 when absent), rows
    without a finite outcome dropped, sorted by `keys` then trial; also the names and their columns."""
    names = list(dict.fromkeys(augmentations))
    cols = [f"aug_{a}" for a in names]
    missing = [c for c in [*keys, outcome, *cols] if c not in table.columns]
    if missing:
        raise KeyError(f"table lacks column(s) {missing}")
    keep = [*keys, outcome, *cols] + [c for c in ("trial", "depth") if c in table.columns and c not in keys]
    df = table[keep].copy()
    if "depth" not in df:
        df["depth"] = 0
    df[cols] = df[cols].astype("boolean").fillna(False).astype(bool)
    df = df[np.isfinite(df[outcome].astype(float))]
    order = [*keys] + (["trial"] if "trial" in df and "trial" not in keys else [])
    return df.sort_values(order, kind="stable").reset_index(drop=True), names, cols


def _replicates(df: pd.DataFrame) -> Iterable[tuple[tuple[int, int], np.ndarray]]:
    keys = df[["block", "repeat"]].to_numpy()
    if not len(keys):
        return []
    change = np.flatnonzero((keys[1:] != keys[:-1]).any(axis=1)) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, len(keys)]
    return [((int(keys[s, 0]), int(keys[s, 1])), np.arange(s, e)) for s, e in zip(starts, ends)]


def _depth_dummies(depth: np.ndarray) -> np.ndarray:
    levels = np.unique(depth)
    return (depth[:, None] == levels[None, 1:]).astype(float)


def seed_effects(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = "best_val_loss") -> pd.DataFrame:
    """Per seed replicate (block, repeat): OLS with-minus-without effect of each augmentation."""
    df, names, cols = tidy(table, augmentations, outcome)
    S = df[cols].to_numpy(dtype=float)
    y = df[outcome].to_numpy(dtype=float)
    depth = df["depth"].to_numpy()
    rows = []
    for (block, repeat), idx in _replicates(df):
        s = S[idx]
        X = np.column_stack([np.ones(len(idx)), s, _depth_dummies(depth[idx])])
        beta, est = _fit(X, y[idx])
        with_ = s.sum(axis=0).astype(int)
        for j, name in enumerate(names):
            rows.append((block, repeat, name, float(beta[1 + j]) if est[1 + j] else np.nan,
                         int(with_[j]), int(len(idx) - with_[j]), int(len(idx))))
    return pd.DataFrame(rows, columns=SEED_COLUMNS).astype(
        {"block": int, "repeat": int, "n_with": int, "n_without": int, "n_points": int})


def _replicate_codes(seeds: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Row -> replicate index (ordered by block, repeat), and the number of replicates."""
    keys = seeds["block"].to_numpy(dtype=np.int64) * (1 << 20) + seeds["repeat"].to_numpy(dtype=np.int64)
    uniq, codes = np.unique(keys, return_inverse=True)
    return codes, len(uniq)


MAX_PROJECTED_BLOCKS = 100


@functools.lru_cache(maxsize=8192)
def _t_critical(level: float, df: int) -> float:
    """Two-sided t critical value at `level` (cached: the projection asks for the same ones row after row)."""
    return float(sps.t.isf(level / 2.0, df))


def blocks_to_decide(row: pd.Series | dict, *, seeds_per_block: int, looks_done: int, max_looks: int,
                     alpha: float, margin: float, spending: str = SPENDING) -> float:
    """More blocks after which the row would be decided if its effect and seed sd held (NaN: not within
    100 blocks). Within the cap the cap's spending plan is used; beyond it, a plan whose cap is that look
    (what a rerun with a larger `trials` gets), so a number above `max_looks - looks_done` means "raise the cap"."""
    if row["verdict"] in DECIDED:
        return 0.0
    n, sd, effect = int(row["n_seeds"]), float(row["sd_seeds"]), float(row["effect"])
    m = int(row.get("n_family", 1) or 1)
    if n < 2 or not (np.isfinite(sd) and np.isfinite(effect)):
        return float("nan")
    for extra in range(1, MAX_PROJECTED_BLOCKS + 1):
        n2 = n + extra * seeds_per_block
        look = looks_done + extra
        a = sidak_level(look_alpha(alpha, look, max(max_looks, look), spending), m)
        half = _t_critical(a, n2 - 1) * sd / math.sqrt(n2)
        if abs(effect) - half > 0 or abs(effect) + half < margin:
            return float(extra)
    return float("nan")


def summarize(seeds: pd.DataFrame, augmentations: Sequence[str], *, margin: float, alpha: float = 0.05,
              looks_done: int = 1, max_looks: int = 1, spending: str = SPENDING,
              seeds_per_block: int | None = None) -> pd.DataFrame:
    """Verdict frame from per-seed effects (the output of `seed_effects`) at look `looks_done`."""
    if margin <= 0:
        raise ValueError("margin must be positive")
    names = list(dict.fromkeys(augmentations))
    a_look = look_alpha(alpha, looks_done, max_looks, spending)
    codes, n_rep = _replicate_codes(seeds)
    pos = {a: j for j, a in enumerate(names)}
    col = np.array([pos.get(a, -1) for a in seeds["augmentation"]], dtype=np.int64)
    keep = col >= 0
    B = np.full((n_rep, len(names)), np.nan)
    B[codes[keep], col[keep]] = seeds["effect"].to_numpy(dtype=float)[keep]
    n_with = np.bincount(col[keep], seeds["n_with"].to_numpy(dtype=float)[keep], minlength=len(names)).astype(int)
    n_without = np.bincount(col[keep], seeds["n_without"].to_numpy(dtype=float)[keep],
                            minlength=len(names)).astype(int)
    res = _decide(names, B, a_look, margin)
    any_est = np.isfinite(B).any(axis=0)
    notes = ["" if n >= 2 else (_NOTE_FEW if any_est[j] else _NOTE_NONE) for j, n in enumerate(res["n_seeds"])]
    m = int(res["n_family"][0]) if len(names) else 1
    method = [f"t across {n} seeds, Šidák x{m}, look {looks_done}/{max_looks} (alpha {a_look:.4g})"
              for n in res["n_seeds"]]
    if seeds_per_block is None:
        blocks = seeds["block"].to_numpy()
        seeds_per_block = max(round(n_rep / len(np.unique(blocks))), 1) if n_rep else 1
    to_decide = [
        blocks_to_decide({"verdict": v, "n_seeds": n, "sd_seeds": sd, "effect": e, "n_family": m},
                         seeds_per_block=seeds_per_block, looks_done=looks_done, max_looks=max_looks,
                         alpha=alpha, margin=margin, spending=spending)
        for v, n, sd, e in zip(res["verdict"], res["n_seeds"], res["sd_seeds"], res["effect"])]
    out = pd.DataFrame({
        "augmentation": names, "effect": res["effect"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
        "p_value": res["p_value"], "n_with": n_with, "n_without": n_without, "verdict": res["verdict"],
        "mde": res["mde"], "ci_method": method, "n_seeds": res["n_seeds"], "se": res["se"],
        "sd_seeds": res["sd_seeds"], "alpha_look": a_look, "n_family": res["n_family"],
        "blocks_to_decide": to_decide, "note": notes,
    })
    return _order(out)


def effects(table: pd.DataFrame, augmentations: Sequence[str], *, margin: float, alpha: float = 0.05,
            looks_done: int = 1, max_looks: int = 1, spending: str = SPENDING,
            outcome: str = "best_val_loss", seeds_per_block: int | None = None) -> pd.DataFrame:
    """Each augmentation's effect on the outcome with a simultaneous, seed-replicated interval and verdict."""
    seeds = seed_effects(table, augmentations, outcome)
    return summarize(seeds, augmentations, margin=margin, alpha=alpha, looks_done=looks_done,
                     max_looks=max_looks, spending=spending, seeds_per_block=seeds_per_block)


def all_decided(frame: pd.DataFrame) -> bool:
    """Whether every row has a decided verdict (helps, hurts or negligible)."""
    return bool(frame["verdict"].isin(DECIDED).all())


def should_stop(frame: pd.DataFrame, looks_done: int, max_looks: int) -> bool:
    """Stop the sweep: everything decided, or the cap on looks reached."""
    return all_decided(frame) or looks_done >= max_looks


def interaction_contrast(table: pd.DataFrame, terms: Sequence[tuple[str, str]], augmentations: Sequence[str], *,
                         margin: float, alpha: float = 0.05, looks_done: int = 1, max_looks: int = 1,
                         spending: str = SPENDING, outcome: str = "best_val_loss") -> pd.DataFrame:
    """Per-seed interaction of two augmentations (or an augmentation with depth), decided across seeds."""
    df, names, cols = tidy(table, augmentations, outcome)
    labels = []
    for a, b in terms:
        for x in (a, b) if b != "depth" else (a,):
            if x not in names:
                raise KeyError(f"{x!r} is not among the augmentations")
        labels.append(f"{a} x {b}")
    S = df[cols].to_numpy(dtype=float)
    y = df[outcome].to_numpy(dtype=float)
    depth = df["depth"].to_numpy()
    reps = _replicates(df)
    B = np.full((len(reps), len(terms)), np.nan)
    aliased: dict[int, set[str]] = {}
    n_with = np.zeros(len(terms), dtype=int)
    n_total = 0
    for r, (_, idx) in enumerate(reps):
        s, d = S[idx], depth[idx]
        base = np.column_stack([np.ones(len(idx)), s, _depth_dummies(d)])
        n_total += len(idx)
        for j, (a, b) in enumerate(terms):
            sa = s[:, names.index(a)]
            if b == "depth":
                levels = np.unique(d)
                if len(levels) < 2:
                    continue
                # a's effect at the deepest level minus at the shallowest, all depth slopes of a free
                extra = sa[:, None] * (d[:, None] == levels[None, 1:])
                target = base.shape[1] + extra.shape[1] - 1
                on = sa * (d == levels[-1])
            else:
                extra = (sa * s[:, names.index(b)])[:, None]
                target = base.shape[1]
                on = extra[:, 0]
                alias = _alias(s, names, a, b)
                if alias:
                    aliased.setdefault(j, set()).add(alias)
            beta, est = _fit(np.column_stack([base, extra]), y[idx])
            n_with[j] += int(on.sum())
            if est[target] and j not in aliased:
                B[r, j] = beta[target]
    a_look = look_alpha(alpha, looks_done, max_looks, spending)
    res = _decide(labels, B, a_look, margin)
    m = int(res["n_family"][0]) if labels else 1
    out = pd.DataFrame({
        "term": labels, "effect": res["effect"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
        "p_value": res["p_value"], "n_with": n_with, "n_without": n_total - n_with, "verdict": res["verdict"],
        "mde": res["mde"],
        "ci_method": [f"t across {n} seeds, Šidák x{m}, look {looks_done}/{max_looks} (alpha {a_look:.4g})"
                      for n in res["n_seeds"]],
        "n_seeds": res["n_seeds"], "se": res["se"], "sd_seeds": res["sd_seeds"], "alpha_look": a_look,
        "note": [f"aliased with {', '.join(sorted(aliased[j]))} in this design: not separable" if j in aliased
                 else ("" if n >= 2 else _NOTE_FEW) for j, n in enumerate(res["n_seeds"])],
    })
    return _order(out, "term")


def _alias(s: np.ndarray, names: list[str], a: str, b: str) -> str:
    """Another two-augmentation interaction whose +-1 column equals a x b's (up to sign), if any."""
    x = 2.0 * s - 1.0
    target = x[:, names.index(a)] * x[:, names.index(b)]
    if np.all(target == target[0]):
        return "the intercept"
    for i, j in itertools.combinations(range(len(names)), 2):
        if {names[i], names[j]} == {a, b}:
            continue
        other = x[:, i] * x[:, j]
        if np.all(other == target) or np.all(other == -target):
            return f"{names[i]} x {names[j]}"
    return ""


@functools.lru_cache(maxsize=8192)
def _t_factor(alpha_per: float, power: float, n: int) -> float:
    """t_{1-alpha/2} + t_{power} with n - 1 degrees of freedom (cached: the bisection repeats them per row)."""
    return float(sps.t.isf(alpha_per / 2.0, n - 1) + sps.t.ppf(power, n - 1))


def seeds_needed(effect: float, sd: float, alpha_per: float, power: float = POWER, limit: int = 100_000) -> float:
    """Seeds for `power` to exclude 0 at two-sided level `alpha_per` if the effect and seed sd held."""
    if not (np.isfinite(effect) and np.isfinite(sd)) or effect == 0:
        return float("nan")

    def enough(n: int) -> bool:
        return _t_factor(alpha_per, power, n) * sd / math.sqrt(n) <= abs(effect)

    if enough(2):
        return 2.0
    if not enough(limit):
        return float("nan")
    lo, hi = 2, limit  # the requirement falls with n: enough(lo) is False, enough(hi) is True
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return float(hi)


def ablation_effects(runs: pd.DataFrame, comparisons: pd.DataFrame, margin: float, alpha: float = 0.05) -> pd.DataFrame:
    """Paired-seed ablation: with-minus-without per seed, t across seeds, Šidák within each comparison kind."""
    if margin <= 0:
        raise ValueError("margin must be positive")
    finished = runs[np.isfinite(runs["best_val_loss"].astype(float))]
    wide = finished.groupby(["seed", "variant"], sort=True)["best_val_loss"].mean().unstack("variant")
    frames = []
    for kind in dict.fromkeys(comparisons["comparison"]):
        fam = comparisons[comparisons["comparison"] == kind].reset_index(drop=True)
        cols, nw, nwo = [], [], []
        for w, wo in zip(fam["with_variant"], fam["without_variant"]):
            a = wide[w] if w in wide else pd.Series(np.nan, index=wide.index)
            b = wide[wo] if wo in wide else pd.Series(np.nan, index=wide.index)
            cols.append((a - b).to_numpy(dtype=float))
            nw.append(int(a.notna().sum()))
            nwo.append(int(b.notna().sum()))
        B = np.column_stack(cols) if cols else np.zeros((len(wide), 0))
        labels = list(fam["augmentation"])
        # One family across both comparison kinds: each kind gets its Šidák share of alpha, so a report
        # quoting leave-one-out and add-one-in rows together still errs with probability <= alpha.
        alpha_kind = 1.0 - (1.0 - alpha) ** (len(fam) / max(len(comparisons), 1))
        res = _decide(labels, B, alpha_kind, margin)
        m = int(res["n_family"][0]) if labels else 1
        a_per = sidak_level(alpha_kind, m)
        frames.append(pd.DataFrame({
            "augmentation": labels, "comparison": kind, "effect": res["effect"], "ci_low": res["ci_low"],
            "ci_high": res["ci_high"], "p_value": res["p_value"], "n_with": nw, "n_without": nwo,
            "verdict": res["verdict"], "mde": res["mde"],
            "ci_method": [f"paired t across {n} seeds, Šidák x{m} ({kind})" for n in res["n_seeds"]],
            "n_seeds": res["n_seeds"],
            "seeds_needed": [seeds_needed(e, s, a_per) for e, s in zip(res["effect"], res["sd_seeds"])],
            "se": res["se"], "sd_seeds": res["sd_seeds"],
            "note": ["" if n >= 2 else _NOTE_FEW for n in res["n_seeds"]],
        }))
    if not frames:
        return pd.DataFrame(columns=["augmentation", "comparison", *EFFECT_COLUMNS[1:], "seeds_needed"])
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["comparison", "effect", "augmentation"], na_position="last",
                           kind="stable").reset_index(drop=True)
