"""Fits and designs: each seed replicate's least-squares fit on its design (switches, depth dummies, centred
magnitude x switch terms), stacked over replicates that share one design, and the variance a shift shared by
the repeats of one trial adds to an estimate (from the residuals). Arrays only.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Sequence

import numpy as np


def fit(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-norm least squares and which coefficients the design identifies."""
    u, s, vt = np.linalg.svd(X, full_matrices=True)
    tol = max(X.shape) * np.finfo(float).eps * (s[0] if s.size else 0.0)
    rank = int((s > tol).sum())
    beta = vt[:rank].T @ ((u[:, :rank].T @ y) / s[:rank])
    null = vt[rank:]
    estimable = np.sqrt((null**2).sum(axis=0)) < 1e-8 if null.size else np.ones(X.shape[1], dtype=bool)
    return beta, estimable


def depth_dummies(depth: np.ndarray) -> np.ndarray:
    levels = np.unique(depth)
    return (depth[:, None] == levels[None, 1:]).astype(float)


def replicate_design(S: np.ndarray, depth: np.ndarray, magnitudes: Sequence[tuple[int, str, np.ndarray]] = ()
                     ) -> tuple[np.ndarray, int, list[tuple[int, str, float]]]:
    """The design matrix of one seed replicate's fit: intercept, the k switches (columns 1..k), depth dummies
    and, for each magnitude `(switch index, name, values)` that varies where its augmentation is on, a centred
    magnitude x switch term (0 where it is off). Returns X, the number of columns before the magnitude terms,
    and (switch index, name, high - low) per magnitude term."""
    X = np.column_stack([np.ones(len(S)), S, depth_dummies(depth)])
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


def projector(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-norm least-squares map (coefficients = P @ y) and which coefficients X identifies (cached:
    every complete replicate of a replicated design has the same X)."""
    X = np.ascontiguousarray(X, dtype=float)
    return _projector_cached(X.shape, X.tobytes())


def _design_fit(X: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, identified, the columns used): the magnitude terms (columns from `base` on) are kept unless they
    cost a column before them its identification (too few runs for both); without them the switches are
    exact only when the design balanced the magnitudes."""
    P, est = projector(X)
    used = np.ones(X.shape[1], dtype=bool)
    if X.shape[1] > base:
        P0, est0 = projector(X[:, :base])
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


def interaction_estimates(S: np.ndarray, y: np.ndarray, depth: np.ndarray, replicates: Sequence[np.ndarray],
                          terms: Sequence[tuple[int, int | None]], names: Sequence[str]
                          ) -> tuple[np.ndarray, dict[int, set[str]], np.ndarray, int]:
    """Per seed replicate (rows `replicates[r]`), each term's interaction: switch a x switch b, or (b None) a's
    effect at the deepest depth minus at the shallowest. Returns the (replicates x terms) estimates (NaN: not
    identified, or aliased), per term the interactions it is aliased with (labels from `names`), the rows with
    each term's product on, and the rows in all."""
    B = np.full((len(replicates), len(terms)), np.nan)
    aliased: dict[int, set[str]] = {}
    n_with = np.zeros(len(terms), dtype=int)
    n_total = 0
    for r, idx in enumerate(replicates):
        s, d = S[idx], depth[idx]
        base = np.column_stack([np.ones(len(idx)), s, depth_dummies(d)])
        n_total += len(idx)
        for j, (ia, ib) in enumerate(terms):
            sa = s[:, ia]
            if ib is None:
                levels = np.unique(d)
                if len(levels) < 2:
                    continue
                # a's effect at the deepest level minus at the shallowest, all depth slopes of a free
                extra = sa[:, None] * (d[:, None] == levels[None, 1:])
                target = base.shape[1] + extra.shape[1] - 1
                on = sa * (d == levels[-1])
                alias = depth_alias(s, d, names, ia)
                if alias:  # depth in a resolution IV plan: a x depth is another pair's column
                    aliased.setdefault(j, set()).add(alias)
            else:
                extra = (sa * s[:, ib])[:, None]
                target = base.shape[1]
                on = extra[:, 0]
                alias = pair_alias(s, names, ia, ib)
                if alias:
                    aliased.setdefault(j, set()).add(alias)
            beta, est = fit(np.column_stack([base, extra]), y[idx])
            n_with[j] += int(on.sum())
            if est[target] and j not in aliased:
                B[r, j] = beta[target]
    return B, aliased, n_with, n_total


def pair_alias(s: np.ndarray, names: Sequence[str], ia: int, ib: int) -> str:
    """Another two-augmentation interaction whose +-1 column equals a x b's (up to sign), if any."""
    x = 2.0 * s - 1.0
    target = x[:, ia] * x[:, ib]
    if np.all(target == target[0]):
        return "the intercept"
    for i, j in itertools.combinations(range(len(names)), 2):
        if {names[i], names[j]} == {names[ia], names[ib]}:
            continue
        other = x[:, i] * x[:, j]
        if np.all(other == target) or np.all(other == -target):
            return f"{names[i]} x {names[j]}"
    return ""


def depth_alias(s: np.ndarray, depth: np.ndarray, names: Sequence[str], ia: int) -> str:
    """With two depths: a two-augmentation interaction whose +-1 column equals a x depth's (up to sign), if
    any (depth as a factor of a resolution IV plan; never when the design is crossed with the depths)."""
    levels = np.unique(depth)
    if len(levels) != 2:
        return ""
    x = 2.0 * s - 1.0
    target = x[:, ia] * np.where(depth == levels[1], 1.0, -1.0)
    for i, j in itertools.combinations(range(len(names)), 2):
        other = x[:, i] * x[:, j]
        if np.all(other == target) or np.all(other == -target):
            return f"{names[i]} x {names[j]}"
    return ""
