"""One verdict rule for the whole report: seed-replicated effects, simultaneous intervals, alpha spending.

A sweep runs its design in replicated blocks; within a block every design point is trained with the
same R seeds (common random numbers), so each (block, repeat) is one seed replicate holding a full
design. The seed is the unit of replication: each replicate yields its own effect estimate, and the
interval comes from how those estimates vary from seed to seed. Intervals are simultaneous across the
family (Šidák) and across sequential looks (alpha spending over a known number of looks, combined by
a union bound, so no assumption about how looks correlate is needed). Each replicate's fit holds centred
magnitude x switch terms, so a dose-response stays inside its augmentation; only complete replicates of
finished blocks decide (`decide_sweep`); a shift the repeats of one trial share beyond the seed, seen in
the residuals, widens the interval (`switch_shift`). The numeric core (`fit_replicates`, `decide_arrays`)
takes stacked arrays, so thousands of simulated sweeps run through the production rule at once.
Pure functions, no randomness.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, replace
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


@dataclass(frozen=True)
class VerdictRule:
    """The parameters of the one verdict rule, as the sweep's stopping rule and the report both apply it.

    `margin`: |effect| below it is negligible (the experiment's `equivalence_margin`); `alpha`: the error rate
    of the whole family of verdicts; `spending`: how `alpha` is spent over sequential looks; `max_looks`: the
    looks the plan allows (a replicated design's cap of blocks); `seeds_per_block`: seed replicates each
    further look brings (None: estimated from the data), for `blocks_to_decide`.
    """

    margin: float
    alpha: float = 0.05
    spending: str = SPENDING
    max_looks: int = 1
    seeds_per_block: int | None = None

    def alpha_at(self, looks_done: int) -> float:
        """The family's level at look `looks_done` (`look_alpha`)."""
        return look_alpha(self.alpha, looks_done, self.max_looks, self.spending)

    def share(self, alpha: float, max_looks: int | None = None) -> "VerdictRule":
        """The same rule for one verdict table's share of alpha (and a plan of `max_looks`, when given)."""
        return replace(self, alpha=alpha, max_looks=self.max_looks if max_looks is None else max_looks)


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
    """(effects, augmentation x depth contrasts) levels of a sweep report without pair tests or
    configuration comparisons (`sweep_shares` holds the general split)."""
    shares = sweep_shares(n_augmentations, n_depths, alpha)
    return shares["effects"], shares["depth"]


def sweep_shares(n_augmentations: int, n_depths: int, alpha: float = 0.05, n_pairs: int = 0,
                 configurations: bool = False) -> dict[str, float]:
    """Each verdict table's Šidák share of a sweep's `alpha`, by its number of rows: the effects (one per
    augmentation), the augmentation x depth contrasts (one per augmentation, with two depths or more), the
    augmentation x augmentation contrasts (`n_pairs`, a design that separates them) and the configurations
    against no augmentation (one row: one question, "is the best configuration better than none?", answered
    with Šidák over every configuration inside its share, so choosing the best afterwards costs nothing)."""
    sizes = {"effects": n_augmentations, "depth": n_augmentations if n_depths > 1 else 0,
             "pairs": max(int(n_pairs), 0), "configurations": 1 if configurations else 0}
    shares = split_alpha(alpha, list(sizes.values()))
    return {k: (a if sizes[k] else 0.0) for k, a in zip(sizes, shares)}


VERDICT_CODES = np.array(["undecided", "helps", "hurts", "negligible"], dtype=object)


def _verdict_codes(n: np.ndarray, lo: np.ndarray, hi: np.ndarray, margin: float) -> np.ndarray:
    """0 undecided, 1 helps, 2 hurts, 3 negligible (elementwise)."""
    ok = (n >= 2) & np.isfinite(lo) & np.isfinite(hi)
    # An interval inside the margin band is a decided "no practical effect" even when it excludes 0:
    # a perfectly reproducible 1e-4 change must not be reported as helping or hurting.
    with np.errstate(invalid="ignore"):
        code = np.where((-margin < lo) & (hi < margin), 3, np.where(hi < 0, 1, np.where(lo > 0, 2, 0)))
    return np.where(ok, code, 0)


def shared_shift(E: np.ndarray, groups: np.ndarray, df_res: int) -> tuple[np.ndarray, np.ndarray]:
    """Variance of a shift shared by the repeats of one trial (beyond the seed), from training residuals.

    E (... x replicates x rows): each complete replicate's residuals from its own fit (NaN rows: not complete),
    all replicates on one design with `df_res` residual degrees of freedom; `groups`: the block of each
    replicate. Within a block the R repeats of a trial share whatever is not the seed; the residuals' block
    means then vary between blocks more than the seeds alone explain. A one-way ANOVA of the residual block
    means across blocks (lack of fit, fixed across blocks, cancels) gives the estimate, truncated at 0, and
    its degrees of freedom ((blocks - 1) x df_res). With one block, the block's residual means against 0:
    fixed lack of fit (interactions) cannot be told apart from a shared shift there, so it counts too, which
    is conservative until a second block separates them (df = df_res).
    """
    groups = np.asarray(groups)
    ok = np.isfinite(E).all(axis=-1)
    Ez = np.where(ok[..., None], E, 0.0)
    levels = np.unique(groups)
    G_ind = (groups[:, None] == levels[None, :]).astype(float)
    n_g = np.einsum("...r,rg->...g", ok.astype(float), G_ind)
    with np.errstate(invalid="ignore", divide="ignore"):
        m_g = np.einsum("...rk,rg->...gk", Ez, G_ind) / np.maximum(n_g, 1)[..., None]
        within = np.where(ok[..., None], Ez - np.einsum("...gk,rg->...rk", m_g, G_ind), 0.0)
        n = n_g.sum(axis=-1)
        G = (n_g > 0).sum(axis=-1)
        grand = (n_g[..., None] * m_g).sum(axis=-2) / np.maximum(n, 1)[..., None]
        ms_w = (within**2).sum(axis=(-2, -1)) / np.maximum((n - G) * df_res, 1)
        one = G < 2
        centre = np.where(one[..., None], 0.0, grand)
        df_b = np.where(one, 1, G - 1)
        ms_b = (n_g * ((m_g - centre[..., None, :]) ** 2).sum(axis=-1)).sum(axis=-1) / np.maximum(df_b * df_res, 1)
        n0 = np.where(one, n, (n - (n_g**2).sum(axis=-1) / np.maximum(n, 1)) / np.maximum(G - 1, 1))
        tau2 = np.maximum((ms_b - ms_w) / np.maximum(n0, 1), 0.0)
    usable = (G >= 1) & (n > G) & (df_res > 0)
    return np.where(usable, tau2, 0.0), np.where(usable, df_b * df_res, 0).astype(float)


def variance_of_mean(B: np.ndarray, shift: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Mean of per-seed estimates over replicates (axis -2, NaN = none), its variance and degrees of freedom.

    The seed-to-seed part is the sample variance / n (n - 1 df). `shift` (what a trial-shared shift adds to
    one block's per-seed estimate, and its df; `switch_shift`) is added in full, as if every block shared the
    same shift: the blocks' shifts are not assumed independent (a shift that follows the design point would
    not average out over blocks), which is conservative; the df are then Welch-Satterthwaite's. (Measured on
    the default's size, 3,000 simulated null sweeps with a shift of intra-class correlation 0.5: weighting
    each block's shift by (its replicates / n)^2 instead let 5.5% of reports carry a false verdict, in full
    3.2%, at no loss of power for a 0.05 effect; a between-block ANOVA of the per-seed estimates themselves,
    with its one df at two blocks, cost a fifth of that power.)
    """
    ok = np.isfinite(B)
    n = ok.sum(axis=-2)
    Bz = np.where(ok, B, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, Bz.sum(axis=-2) / np.maximum(n, 1), np.nan)
        dev = np.where(ok, B - mean[..., None, :], 0.0)
        var_total = np.where(n > 1, (dev**2).sum(axis=-2) / np.maximum(n - 1, 1), np.nan)
    a1 = var_total / np.maximum(n, 1)
    out = {"mean": mean, "n": n, "var": a1, "df": (n - 1).astype(float), "sd": np.sqrt(var_total)}
    if shift is None:
        return out
    extra = np.broadcast_to(shift[0], a1.shape)
    df_extra = np.broadcast_to(shift[1], a1.shape)
    var = a1 + extra
    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.where((extra > 0) & (df_extra > 0),
                      var**2 / (a1**2 / np.maximum(n - 1, 1) + extra**2 / np.maximum(df_extra, 1)), n - 1.0)
    usable = np.isfinite(var) & (n > 1)
    out["var"] = np.where(usable, var, a1)
    out["df"] = np.where(usable, df, out["df"])
    out["sd"] = np.where(usable, np.sqrt(var * np.maximum(n, 1)), out["sd"])
    return out


def decide_arrays(B: np.ndarray, alpha_look: float, margin: float,
                  shift: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The verdict rule on a (... x replicates x labels) array of per-seed estimates (NaN = none): simultaneous
    (Šidák over the labels with two or more estimates) t intervals at `alpha_look`, p-values adjusted the
    same way, verdict codes (`VERDICT_CODES`). Leading axes are independent families (vectorised A/A)."""
    v = variance_of_mean(B, shift)
    mean, n, se = v["mean"], v["n"], np.sqrt(v["var"])
    tested = n >= 2
    m = np.maximum(tested.sum(axis=-1, keepdims=True), 1)
    a = -np.expm1(np.log1p(-alpha_look) / m)
    df = np.where(tested, np.maximum(v["df"], 1e-9), 1.0)
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
    return {"effect": mean, "ci_low": lo, "ci_high": hi, "p_value": p_adj, "code": _verdict_codes(n, lo, hi, margin),
            "mde": mde, "n_seeds": n.astype(int), "se": se, "sd_seeds": v["sd"], "df": v["df"],
            "n_family": np.broadcast_to(m, n.shape), "tcrit": tcrit}


def _decide(labels: Sequence[str], B: np.ndarray, alpha_look: float, margin: float,
            shift=None) -> dict[str, np.ndarray]:
    """Simultaneous t intervals from a (replicates x labels) matrix of per-seed estimates (NaN = none)."""
    res = decide_arrays(B, alpha_look, margin, shift)
    res["verdict"] = VERDICT_CODES[res["code"]]
    return res


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


def magnitude_columns(table: pd.DataFrame, augmentations: Sequence[str]) -> dict[str, list[str]]:
    """Per augmentation, the numeric `aug_<name>_<param>` magnitude columns the table holds (the flat
    convention; a name that is a longer augmentation's prefix does not claim that augmentation's columns)."""
    names = sorted(dict.fromkeys(augmentations), key=len, reverse=True)
    out: dict[str, list[str]] = {a: [] for a in augmentations}
    for col in table.columns:
        if not col.startswith("aug_") or col[4:] in names or not pd.api.types.is_numeric_dtype(table[col]) \
                or pd.api.types.is_bool_dtype(table[col]):
            continue
        for a in names:  # longest first
            if col.startswith(f"aug_{a}_"):
                out[a].append(col)
                break
    return {a: sorted(c) for a, c in out.items() if c}


def tidy(table: pd.DataFrame, augmentations: Sequence[str], outcome: str,
         keys: Sequence[str] = ("block", "repeat")) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The columns an analysis uses (`keys`, outcome, `aug_<name>` as bool, depth; 0 when absent; numeric
    magnitudes `aug_<name>_<param>` when present), rows without a finite outcome dropped, sorted by `keys`
    then trial; also the names and their switch columns."""
    names = list(dict.fromkeys(augmentations))
    cols = [f"aug_{a}" for a in names]
    missing = [c for c in [*keys, outcome, *cols] if c not in table.columns]
    if missing:
        raise KeyError(f"table lacks column(s) {missing}")
    mags = [c for cs in magnitude_columns(table, names).values() for c in cs]
    keep = [*keys, outcome, *cols, *mags] + [c for c in ("trial", "depth") if c in table.columns and c not in keys]
    df = table[keep].copy()
    if "depth" not in df:
        df["depth"] = 0
    df[cols] = df[cols].astype("boolean").fillna(False).astype(bool)
    df = df[np.isfinite(df[outcome].astype(float))]
    order = [*keys] + (["trial"] if "trial" in df and "trial" not in keys else [])
    return df.sort_values(order, kind="stable").reset_index(drop=True), names, cols


def complete_replicates(table: pd.DataFrame, points: int, outcome: str = "best_val_loss") -> pd.DataFrame:
    """Only the seed replicates (block, repeat) that hold a finite outcome for all `points` design points.

    A hole in a replicate (a design point that failed twice) unbalances its fit, and interactions then leak
    into main effects; a replicate of a block still running is not a look the stopping rule has taken."""
    if not len(table):
        return table
    ok = table[np.isfinite(table[outcome].astype(float))]
    sizes = ok.groupby(["block", "repeat"])["trial"].nunique() if "trial" in ok else ok.groupby(["block", "repeat"]).size()
    full = sizes[sizes >= points].index
    keys = pd.MultiIndex.from_frame(table[["block", "repeat"]])
    return table[keys.isin(full)].reset_index(drop=True)


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


def replicate_design(S: np.ndarray, depth: np.ndarray, magnitudes: Sequence[tuple[int, str, np.ndarray]] = ()
                     ) -> tuple[np.ndarray, int, list[tuple[int, str, float]]]:
    """The design matrix of one seed replicate's fit: intercept, the k switches (columns 1..k), depth dummies
    and, for each magnitude `(switch index, name, values)` that varies where its augmentation is on, a centred
    magnitude x switch term (0 where it is off). Returns X, the number of columns before the magnitude terms,
    and (switch index, name, high - low) per magnitude term."""
    X = np.column_stack([np.ones(len(S)), S, _depth_dummies(depth)])
    cols, labels = [], []
    for j, name, v in magnitudes:
        on = S[:, j] > 0
        vals = v[on]
        if on.sum() < 2 or not np.isfinite(vals).all() or np.ptp(vals) <= 0:
            continue
        # fsum: the same centre whatever the row order, so equal designs compare equal byte for byte
        cols.append(np.where(on, v - math.fsum(vals) / len(vals), 0.0))
        labels.append((j, name, float(np.ptp(vals))))
    return (np.column_stack([X, *cols]) if cols else X), X.shape[1], labels


@functools.lru_cache(maxsize=256)
def _projector_cached(shape: tuple[int, int], data: bytes) -> tuple[np.ndarray, np.ndarray]:
    X = np.frombuffer(data, dtype=float).reshape(shape)
    u, s, vt = np.linalg.svd(X, full_matrices=True)
    tol = max(X.shape) * np.finfo(float).eps * (s[0] if s.size else 0.0)
    rank = int((s > tol).sum())
    P = vt[:rank].T @ (u[:, :rank] / s[:rank]).T
    null = vt[rank:]
    estimable = np.sqrt((null**2).sum(axis=0)) < 1e-8 if null.size else np.ones(X.shape[1], dtype=bool)
    return P, estimable


def _projector(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-norm least-squares map (coefficients = P @ y) and which coefficients X identifies (cached:
    every complete replicate of a replicated design has the same X)."""
    X = np.ascontiguousarray(X, dtype=float)
    return _projector_cached(X.shape, X.tobytes())


def _design_fit(X: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, identified, the columns used): the magnitude terms (columns from `base` on) are kept unless they
    cost a column before them its identification (too few runs for both); without them the switches are
    exact only when the design balanced the magnitudes."""
    P, est = _projector(X)
    used = np.ones(X.shape[1], dtype=bool)
    if X.shape[1] > base:
        P0, est0 = _projector(X[:, :base])
        if not (est[:base] == est0).all():
            P = np.vstack([P0, np.zeros((X.shape[1] - base, X.shape[0]))])
            est = np.r_[est0, np.zeros(X.shape[1] - base, dtype=bool)]
            used[base:] = False
    return P, est, used


def fit_replicates(Y: np.ndarray, X: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    """OLS of every replicate stacked in Y (... x n_rows, rows in X's order) on one design X: coefficients
    (... x columns, NaN where not identified; NaN for a replicate with a missing row) and which are
    identified (`_design_fit` says when the magnitude terms are dropped)."""
    P, est, _ = _design_fit(X, base)
    beta = np.asarray(Y, dtype=float) @ P.T
    return np.where(est, beta, np.nan), est


def switch_shift(Y: np.ndarray, X: np.ndarray, base: int, k: int, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per switch (columns 1..k of X), the variance a trial-shared shift adds to one block's per-seed effect
    (`shared_shift` of the residuals times the effect's squared weight on each training) and its df."""
    L = np.eye(X.shape[1])[1:1 + k]
    return contrast_shift(Y, X, base, L, groups)


def contrast_shift(Y: np.ndarray, X: np.ndarray, base: int, L: np.ndarray, groups: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """`switch_shift` for any linear combinations `L` (rows) of X's coefficients."""
    P, _, used = _design_fit(X, base)
    Xu = X[:, used]
    fitted = (np.asarray(Y, dtype=float) @ P[used].T) @ Xu.T
    E = np.asarray(Y, dtype=float) - fitted
    df_res = X.shape[0] - int(np.linalg.matrix_rank(Xu))
    tau2, df = shared_shift(E, groups, df_res)
    weight = ((np.asarray(L, dtype=float) @ P) ** 2).sum(axis=-1)
    return tau2[..., None] * weight, np.broadcast_to(df[..., None], (*df.shape, len(weight)))


def _replicate_fits(table: pd.DataFrame, augmentations: Sequence[str], outcome: str):
    """Per seed replicate: (block, repeat), switches, switch effects (NaN: not identified), magnitude slopes.

    Replicates whose design is the same up to row order (every complete replicate of a replicated design)
    are fitted together, their rows put in one canonical order."""
    df, names, cols = tidy(table, augmentations, outcome)
    S = df[cols].to_numpy(dtype=float)
    y = df[outcome].to_numpy(dtype=float)
    depth = df["depth"].to_numpy()
    mags = [(j, c, df[c].to_numpy(dtype=float)) for j, a in enumerate(names)
            for c in magnitude_columns(df, names).get(a, [])]
    k = len(names)
    groups: dict[bytes, list] = {}
    reps = _replicates(df)
    for r, (_, idx) in enumerate(reps):
        X, base, zlab = replicate_design(S[idx], depth[idx], [(j, c, v[idx]) for j, c, v in mags])
        order = np.lexsort(X.T[::-1])
        X = np.ascontiguousarray(X[order])
        key = X.tobytes() + repr((X.shape, base, zlab)).encode()
        groups.setdefault(key, []).append((r, X, base, zlab, y[idx][order]))
    out: list = [None] * len(reps)
    designs = []
    for members in groups.values():
        _, X, base, zlab, _ = members[0]
        Y = np.vstack([m[4] for m in members])
        designs.append((np.array([reps[m[0]][0][0] for m in members]), X, base, Y))
        beta, est = fit_replicates(Y, X, base)
        for (r, *_), b in zip(members, beta):
            (block, repeat), idx = reps[r]
            slopes = [(names[j], c, float(b[base + i]) * span if est[base + i] else np.nan)
                      for i, (j, c, span) in enumerate(zlab)]
            out[r] = ((block, repeat), S[idx], b[1:1 + k], est[1:1 + k], slopes)
    return names, out, designs


def seed_effects(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = "best_val_loss") -> pd.DataFrame:
    """Per seed replicate (block, repeat): OLS with-minus-without effect of each augmentation.

    The fit holds depth and, for every magnitude an augmentation varies over in the replicate, a centred
    magnitude x switch term: an augmentation's effect is then the change from turning it on at its average
    magnitude, and a dose-response of one augmentation cannot leak into another's effect (in a factorial
    design the magnitudes are balanced against the other switches, and the terms change nothing)."""
    names, fits, _ = _replicate_fits(table, augmentations, outcome)
    return _seed_frame(names, fits)


def _seed_frame(names: list[str], fits: list) -> pd.DataFrame:
    rows = []
    for (block, repeat), s, beta, est, _ in fits:
        with_ = s.sum(axis=0).astype(int)
        for j, name in enumerate(names):
            rows.append((block, repeat, name, float(beta[j]) if est[j] else np.nan,
                         int(with_[j]), int(len(s) - with_[j]), int(len(s))))
    return pd.DataFrame(rows, columns=SEED_COLUMNS).astype(
        {"block": int, "repeat": int, "n_with": int, "n_without": int, "n_points": int})


def dose_responses(table: pd.DataFrame, augmentations: Sequence[str], *, alpha: float = 0.05,
                   outcome: str = "best_val_loss") -> pd.DataFrame:
    """Per augmentation and magnitude: the change in the outcome from the lowest to the highest magnitude
    trained (with the augmentation on), per seed replicate, with a simultaneous t interval across seeds.
    Descriptive: it carries no verdict, so it takes no share of the report's alpha."""
    names, fits, _ = _replicate_fits(table, augmentations, outcome)
    labels = list(dict.fromkeys((a, c) for *_, slopes in fits for a, c, _ in slopes))
    cols = ["augmentation", "magnitude", "effect", "ci_low", "ci_high", "n_seeds", "sd_seeds"]
    if not labels:
        return pd.DataFrame(columns=cols)
    B = np.full((len(fits), len(labels)), np.nan)
    pos = {lab: i for i, lab in enumerate(labels)}
    for r, (*_, slopes) in enumerate(fits):
        for a, c, v in slopes:
            B[r, pos[(a, c)]] = v
    res = _decide([f"{a}:{c}" for a, c in labels], B, alpha, margin=np.inf)
    return pd.DataFrame({"augmentation": [a for a, _ in labels], "magnitude": [c[len(f"aug_{a}_"):] for a, c in labels],
                         "effect": res["effect"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
                         "n_seeds": res["n_seeds"], "sd_seeds": res["sd_seeds"]})


def _replicate_codes(seeds: pd.DataFrame) -> tuple[np.ndarray, int, np.ndarray]:
    """Row -> replicate index (ordered by block, repeat), the number of replicates, and each one's block."""
    keys = seeds["block"].to_numpy(dtype=np.int64) * (1 << 20) + seeds["repeat"].to_numpy(dtype=np.int64)
    uniq, codes = np.unique(keys, return_inverse=True)
    return codes, len(uniq), uniq >> 20


MAX_PROJECTED_BLOCKS = 100


@functools.lru_cache(maxsize=8192)
def _t_critical(level: float, df: int) -> float:
    """Two-sided t critical value at `level` (cached: the projection asks for the same ones row after row)."""
    return float(sps.t.isf(level / 2.0, df))


def blocks_to_decide(row: pd.Series | dict, rule: VerdictRule, looks_done: int, seeds_per_block: int) -> float:
    """More blocks after which the row would be decided if its effect and seed sd held (NaN: not within
    100 blocks), each block bringing `seeds_per_block` seed replicates. Within the cap the cap's spending plan
    is used; beyond it, a plan whose cap is that look (what a rerun with a larger `trials` gets), so a number
    above `rule.max_looks - looks_done` means "raise the cap"."""
    alpha, margin, max_looks, spending = rule.alpha, rule.margin, rule.max_looks, rule.spending
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


def summarize(seeds: pd.DataFrame, augmentations: Sequence[str], rule: VerdictRule, looks_done: int = 1,
              shift: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """Verdict frame from per-seed effects (the output of `seed_effects`) at look `looks_done`; `shift`: per
    augmentation, what a trial-shared shift adds to a block's per-seed effect, and its df (`switch_shift`)."""
    margin, max_looks = rule.margin, rule.max_looks
    if margin <= 0:
        raise ValueError("margin must be positive")
    names = list(dict.fromkeys(augmentations))
    a_look = rule.alpha_at(looks_done)
    codes, n_rep, _ = _replicate_codes(seeds)
    pos = {a: j for j, a in enumerate(names)}
    col = np.array([pos.get(a, -1) for a in seeds["augmentation"]], dtype=np.int64)
    keep = col >= 0
    B = np.full((n_rep, len(names)), np.nan)
    B[codes[keep], col[keep]] = seeds["effect"].to_numpy(dtype=float)[keep]
    n_with = np.bincount(col[keep], seeds["n_with"].to_numpy(dtype=float)[keep], minlength=len(names)).astype(int)
    n_without = np.bincount(col[keep], seeds["n_without"].to_numpy(dtype=float)[keep],
                            minlength=len(names)).astype(int)
    res = _decide(names, B, a_look, margin, shift=shift)
    any_est = np.isfinite(B).any(axis=0)
    notes = ["" if n >= 2 else (_NOTE_FEW if any_est[j] else _NOTE_NONE) for j, n in enumerate(res["n_seeds"])]
    m = int(res["n_family"][0]) if len(names) else 1
    method = [f"t across {n} seeds, Šidák x{m}, look {looks_done}/{max_looks} (alpha {a_look:.4g})"
              for n in res["n_seeds"]]
    seeds_per_block = rule.seeds_per_block
    if seeds_per_block is None:
        blocks = seeds["block"].to_numpy()
        seeds_per_block = max(round(n_rep / len(np.unique(blocks))), 1) if n_rep else 1
    to_decide = [
        blocks_to_decide({"verdict": v, "n_seeds": n, "sd_seeds": sd, "effect": e, "n_family": m}, rule,
                         looks_done, seeds_per_block)
        for v, n, sd, e in zip(res["verdict"], res["n_seeds"], res["sd_seeds"], res["effect"])]
    out = pd.DataFrame({
        "augmentation": names, "effect": res["effect"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
        "p_value": res["p_value"], "n_with": n_with, "n_without": n_without, "verdict": res["verdict"],
        "mde": res["mde"], "ci_method": method, "n_seeds": res["n_seeds"], "se": res["se"],
        "sd_seeds": res["sd_seeds"], "alpha_look": a_look, "n_family": res["n_family"],
        "blocks_to_decide": to_decide, "note": notes,
    })
    return _order(out)


def effects(table: pd.DataFrame, augmentations: Sequence[str], rule: VerdictRule, looks_done: int = 1,
            outcome: str = "best_val_loss") -> pd.DataFrame:
    """Each augmentation's effect on the outcome with a simultaneous, seed-replicated interval and verdict."""
    names, fits, designs = _replicate_fits(table, augmentations, outcome)
    seeds = _seed_frame(names, fits)
    shift = None
    if designs:
        # The largest group of replicates sharing one design (all of a replicated design's complete ones).
        blocks, X, base, Y = max(designs, key=lambda d: len(d[0]))
        shift = switch_shift(Y, X, base, len(names), blocks)
    return summarize(seeds, augmentations, rule, looks_done, shift=shift)


def all_decided(frame: pd.DataFrame) -> bool:
    """Whether every row has a decided verdict (helps, hurts or negligible)."""
    return bool(frame["verdict"].isin(DECIDED).all())


def should_stop(frame, looks_done: int, max_looks: int) -> bool:
    """Stop the sweep: everything decided (a `SweepVerdicts` counts conditional effects), or the cap reached."""
    done = frame.all_decided() if isinstance(frame, SweepVerdicts) else all_decided(frame)
    return done or looks_done >= max_looks


def interaction_contrast(table: pd.DataFrame, terms: Sequence[tuple[str, str]], augmentations: Sequence[str],
                         rule: VerdictRule, looks_done: int = 1, outcome: str = "best_val_loss") -> pd.DataFrame:
    """Per-seed interaction of two augmentations (or an augmentation with depth), decided across seeds."""
    margin, max_looks = rule.margin, rule.max_looks
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
                alias = _depth_alias(s, d, names, a)
                if alias:  # depth in a resolution IV plan: a x depth is another pair's column
                    aliased.setdefault(j, set()).add(alias)
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
    a_look = rule.alpha_at(looks_done)
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


def _depth_alias(s: np.ndarray, depth: np.ndarray, names: list[str], a: str) -> str:
    """With two depths: a two-augmentation interaction whose +-1 column equals a x depth's (up to sign), if
    any (depth as a factor of a resolution IV plan; never when the design is crossed with the depths)."""
    levels = np.unique(depth)
    if len(levels) != 2:
        return ""
    x = 2.0 * s - 1.0
    target = x[:, names.index(a)] * np.where(depth == levels[1], 1.0, -1.0)
    for i, j in itertools.combinations(range(len(names)), 2):
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


def separable_pairs(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = "best_val_loss"
                    ) -> list[tuple[str, str]]:
    """Every two-augmentation pair, when a complete seed replicate's design separates all of them from the
    main effects and from each other (a full factorial or a resolution >= V fraction: the model with every
    main effect and every two-way product has full column rank); [] otherwise."""
    names = list(dict.fromkeys(augmentations))
    if len(names) < 2 or not len(table):
        return []
    df, names, cols = tidy(table, names, outcome)
    reps = _replicates(df)
    if not reps:
        return []
    x = 2.0 * df[cols].to_numpy(dtype=float)[reps[0][1]] - 1.0
    pairs = list(itertools.combinations(names, 2))
    X = np.column_stack([np.ones(len(x)), x, *[x[:, names.index(a)] * x[:, names.index(b)] for a, b in pairs]])
    depth = df["depth"].to_numpy()[reps[0][1]]
    levels = np.unique(depth)
    if len(levels) == 2:  # and from depth and every augmentation x depth (depth may be a factor of the plan)
        z = np.where(depth == levels[1], 1.0, -1.0)
        X = np.column_stack([X, z, x * z[:, None]])
    return pairs if np.linalg.matrix_rank(X) == X.shape[1] else []


def pair_design(S: np.ndarray, depth: np.ndarray, ia: int, ib: int) -> np.ndarray:
    """One replicate's fit for the pair (ia, ib): intercept, switches, depth dummies and their product (last
    column): a's effect with b off is column 1 + ia, with b on that plus the last column."""
    return np.column_stack([np.ones(len(S)), S, _depth_dummies(depth), S[:, ia] * S[:, ib]])


COND_KINDS = ((0, False), (0, True), (1, False), (1, True))  # (which of the pair, the other on?)


def conditional_from_beta(beta: np.ndarray, ia: int, ib: int) -> np.ndarray:
    """(... x 4) conditional effects from a pair fit's coefficients: a | b off, a | b on, b | a off, b | a on."""
    ab = beta[..., -1]
    a, b = beta[..., 1 + ia], beta[..., 1 + ib]
    return np.stack([a, a + ab, b, b + ab], axis=-1)


def conditional_level(alpha_effects: float, k: int, n_conditional) -> np.ndarray:
    """Per-comparison level of a conditional effect: Šidák within the effects' share over the k marginal
    rows and the `n_conditional` conditional rows shown together."""
    n = np.asarray(n_conditional, dtype=float)
    return -np.expm1(np.log1p(-alpha_effects) / np.maximum(k + n, 1))


def decide_conditional(B: np.ndarray, decided_pairs: np.ndarray, alpha_effects: float, k: int,
                       margin: float, shift=None) -> dict[str, np.ndarray]:
    """Verdicts on conditional effects (... x replicates x 4*pairs, the `COND_KINDS` of each pair in turn),
    only for the pairs whose interaction is decided (`decided_pairs`, ... x pairs; the others are NaN, not
    tested): each at `conditional_level` of the effects' look level, so that a report of k marginal rows and
    m conditional rows is one Šidák family."""
    mask = np.repeat(np.asarray(decided_pairs, dtype=bool), 4, axis=-1)
    B = np.where(mask[..., None, :], B, np.nan)
    m = mask.sum(axis=-1, keepdims=True)
    per = conditional_level(alpha_effects, k, m)
    # decide_arrays applies Šidák over the m tested rows; give it the level that returns `per` exactly
    family = -np.expm1(np.maximum(m, 1) * np.log1p(-per))
    return decide_arrays(B, family, margin, shift)


def augmentation_decided(eff_codes: np.ndarray, pair_codes: np.ndarray | None, cond_codes: np.ndarray | None,
                         pairs: Sequence[tuple[int, int]], k: int) -> np.ndarray:
    """(... x k) whether each augmentation is decided for `stop: decided`: by its conditional effects when it
    is in a decided interaction (all of them decided), else by its marginal effect."""
    decided = np.asarray(eff_codes) != 0
    if pair_codes is None or not len(pairs):
        return decided
    inter = np.isin(pair_codes, (1, 2))
    in_inter = np.zeros(decided.shape, dtype=bool)
    cond_ok = np.ones(decided.shape, dtype=bool)
    for p, (ia, ib) in enumerate(pairs):
        on = inter[..., p]
        for j, (which, _) in enumerate(COND_KINDS):
            col = ia if which == 0 else ib
            ok = cond_codes[..., 4 * p + j] != 0
            in_inter[..., col] |= on
            cond_ok[..., col] &= ~on | ok
    return np.where(in_inter, cond_ok, decided)


def pair_verdicts(replicates: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], pairs: Sequence[tuple[int, int]],
                  *, alpha_pairs: float, alpha_effects: float, k: int, margin: float) -> tuple[dict, dict]:
    """The aug x aug contrasts and the conditional effects of the decided ones, from `replicates` = (Y, S, depth,
    groups) as `replicate_matrix` returns them: stacked complete seed replicates Y (... x replicates x rows,
    rows in the order of S/depth; `groups`: each replicate's block):
    one fit per pair with its product term, a trial-shared shift widening each interval (`contrast_shift`);
    contrasts at look level `alpha_pairs` (Šidák over the pairs), conditional effects by
    `decide_conditional` at the effects' look level. Returns (pairs' `decide_arrays`, conditional's)."""
    Y, S, depth, groups = replicates
    b_int, b_cond, v_int, v_cond, d_int, d_cond = [], [], [], [], [], []
    for ia, ib in pairs:
        Xp = pair_design(S, depth, ia, ib)
        beta = fit_replicates(Y, Xp, Xp.shape[1])[0]
        b_int.append(beta[..., -1:])
        b_cond.append(conditional_from_beta(beta, ia, ib))
        e = np.eye(Xp.shape[1])
        L = np.stack([e[-1], e[1 + ia], e[1 + ia] + e[-1], e[1 + ib], e[1 + ib] + e[-1]])
        var, df = contrast_shift(Y, Xp, Xp.shape[1], L, groups)
        v_int.append(var[..., :1]), d_int.append(df[..., :1]), v_cond.append(var[..., 1:]), d_cond.append(df[..., 1:])
    cat = lambda xs: np.concatenate(xs, axis=-1)  # noqa: E731
    res_p = decide_arrays(cat(b_int), alpha_pairs, margin, (cat(v_int), cat(d_int)))
    res_c = decide_conditional(cat(b_cond), np.isin(res_p["code"], (1, 2)), alpha_effects, k, margin,
                               shift=(cat(v_cond), cat(d_cond)))
    return res_p, res_c


def replicate_matrix(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = "best_val_loss"):
    """Complete seed replicates of one design stacked (replicates x rows, rows sorted by switches and
    depth), the design's switches and depths, and each replicate's block; None if the replicates' designs
    differ."""
    df, names, cols = tidy(table, augmentations, outcome)
    reps = _replicates(df)
    S_all, y, depth = df[cols].to_numpy(dtype=float), df[outcome].to_numpy(dtype=float), df["depth"].to_numpy()
    rows, S0, d0 = [], None, None
    for _, idx in reps:
        order = idx[np.lexsort(np.column_stack([S_all[idx], depth[idx]]).T[::-1])]
        if S0 is None:
            S0, d0 = S_all[order], depth[order]
        elif S_all[order].shape != S0.shape or (S_all[order] != S0).any() or (depth[order] != d0).any():
            return None
        rows.append(y[order])
    if not rows:
        return None
    return np.vstack(rows), S0, d0, np.array([b for (b, _), _ in reps])


def pair_frames(table: pd.DataFrame, pairs: Sequence[tuple[str, str]], augmentations: Sequence[str], *,
                alpha_pairs: float, alpha_effects: float, margin: float, looks: tuple[int, int]
                ) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """`pair_verdicts` on a sweep's complete seed replicates, as frames: the aug x aug contrasts (`term`,
    effect = the product term: how much a's effect changes when b is turned on) and the conditional effects
    (`augmentation`, `given`) of the decided ones."""
    names = list(dict.fromkeys(augmentations))
    mat = replicate_matrix(table, names)
    if mat is None or not pairs:
        return None, None
    idx = [(names.index(a), names.index(b)) for a, b in pairs]
    rp, rc = pair_verdicts(mat, idx, alpha_pairs=alpha_pairs, alpha_effects=alpha_effects, k=len(names),
                           margin=margin)
    method = [f"t across {n} seeds, Šidák x{int(rp['n_family'][0])}, look {looks[0]}/{looks[1]} "
              f"(alpha {alpha_pairs:.4g})" for n in rp["n_seeds"]]
    pf = pd.DataFrame({"term": [f"{a} x {b}" for a, b in pairs], "effect": rp["effect"], "ci_low": rp["ci_low"],
                       "ci_high": rp["ci_high"], "p_value": rp["p_value"], "verdict": VERDICT_CODES[rp["code"]],
                       "mde": rp["mde"], "ci_method": method, "n_seeds": rp["n_seeds"]})
    rows = []
    for p, (a, b) in enumerate(pairs):
        if rp["code"][p] not in (1, 2):
            continue
        for j, (which, other_on) in enumerate(COND_KINDS):
            i = 4 * p + j
            aug, other = (a, b) if which == 0 else (b, a)
            rows.append({"augmentation": aug, "given": f"{other} {'on' if other_on else 'off'}",
                         "effect": rc["effect"][i], "ci_low": rc["ci_low"][i], "ci_high": rc["ci_high"][i],
                         "p_value": rc["p_value"][i], "verdict": VERDICT_CODES[rc["code"][i]],
                         "n_seeds": int(rc["n_seeds"][i]), "pair": f"{a} x {b}"})
    cols = ["augmentation", "given", "effect", "ci_low", "ci_high", "p_value", "verdict", "n_seeds", "pair"]
    return _order(pf, "term"), pd.DataFrame(rows, columns=cols)


@dataclass(frozen=True)
class SweepVerdicts:
    """The verdict-bearing tables of a sweep at one look, and which data they used."""

    effects: pd.DataFrame
    interactions: pd.DataFrame | None  # augmentation x depth contrasts (two depths or more)
    looks: tuple[int, int]  # (looks done, maximum looks)
    blocks_used: tuple[int, ...]  # blocks whose complete seed replicates decided
    table: pd.DataFrame  # the rows that decided
    pairs: pd.DataFrame | None = None  # augmentation x augmentation contrasts (a design that separates them)
    conditional: pd.DataFrame | None = None  # conditional effects of the augmentations in decided pairs
    shares: dict | None = None  # each verdict table's share of the sweep's alpha (`sweep_shares`)

    def decided(self) -> dict[str, bool]:
        """Per augmentation: decided for `stop: decided` (by its conditional effects when it interacts)."""
        out = {r.augmentation: r.verdict in DECIDED for r in self.effects.itertuples()}
        if self.conditional is not None and len(self.conditional):
            for aug, g in self.conditional.groupby("augmentation"):
                out[aug] = bool(g["verdict"].isin(DECIDED).all())
        return out

    def all_decided(self) -> bool:
        return all(self.decided().values())


def decide_sweep(table: pd.DataFrame, augmentations: Sequence[str], rule: VerdictRule, points: int | None = None,
                 finished: Sequence[int] | None = None) -> SweepVerdicts:
    """The one verdict rule applied to a sweep's (trial x repeat) table, as the sweep's stopping rule and the
    report both apply it: with a replicated design (`points` per block), only blocks in `finished` count,
    a look is a finished block, and only complete seed replicates decide (a hole unbalances the fit). The
    effects, the augmentation x depth contrasts, the augmentation x augmentation contrasts (a replicated
    design that separates them: full factorial or resolution >= V) and the configurations against none share
    `rule.alpha` (`sweep_shares`); an augmentation in a decided interaction gets conditional effects instead."""
    alpha, margin, spending = rule.alpha, rule.margin, rule.spending
    augs = list(dict.fromkeys(augmentations))
    looks = (1, 1)
    if points is not None and len(table):
        done = sorted(set(int(b) for b in (finished if finished is not None else table["block"].unique())))
        table = complete_replicates(table[table["block"].isin(done)], points)
        looks = (max(len(done), 1), max(len(done), 1, int(rule.max_looks)))
    depths = sorted(table["depth"].unique()) if len(table) and "depth" in table else []
    n_rep = table.groupby(["block", "repeat"]).ngroups if len(table) else 0
    pairs = separable_pairs(table, augs) if points is not None and n_rep >= 2 else []
    none_rows = bool(len(table)) and not table[[f"aug_{a}" for a in augs]].astype(bool).any(axis=1).all()
    shares = sweep_shares(len(augs), len(depths), alpha, len(pairs), configurations=none_rows)
    eff = effects(table, augs, rule.share(shares["effects"], looks[1]), looks[0])
    inter = None
    if len(depths) > 1 and n_rep >= 2:
        inter = interaction_contrast(table, [(a, "depth") for a in augs], augs, rule.share(shares["depth"], looks[1]),
                                     looks[0])
    pair_frame, cond = None, None
    if pairs:
        pair_frame, cond = pair_frames(
            table, pairs, augs, margin=margin, looks=looks,
            alpha_pairs=look_alpha(shares["pairs"], looks[0], looks[1], spending),
            alpha_effects=look_alpha(shares["effects"], looks[0], looks[1], spending))
    used = tuple(sorted(set(int(b) for b in table["block"]))) if len(table) else ()
    return SweepVerdicts(eff, inter, looks, used, table, pair_frame, cond, shares)


def report_alphas(sizes: Sequence[int], alpha: float = 0.05) -> list[float]:
    """Each verdict table's share of a report's one alpha (`split_alpha` by the tables' sizes)."""
    return split_alpha(alpha, sizes)
