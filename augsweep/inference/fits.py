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
    means across blocks (lack of fit, fixed across blocks, cancels) gives the estimate (ms_b - ms_w) / n0,
    truncated at 0. Its degrees of freedom are Satterthwaite's for a difference of mean squares,
    (ms_b - ms_w)^2 / (ms_b^2 / df_b + ms_w^2 / df_w), far fewer than df_b when ms_b is near ms_w (about 1.7
    instead of 7 when ms_b = 2 ms_w at two blocks): the estimate is that noisy. With one block, the block's
    residual means against 0:
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
        df_between = df_b * df_res
        df_within = np.maximum((n - G) * df_res, 1)
        diff = np.maximum(ms_b - ms_w, 0.0)
        denom = ms_b**2 / np.maximum(df_between, 1) + ms_w**2 / df_within
        df = np.where(denom > 0, diff**2 / np.where(denom > 0, denom, 1.0), 0.0)
    usable = (G >= 1) & (n > G) & (df_res > 0)
    return np.where(usable, tau2, 0.0), np.where(usable & (tau2 > 0), np.maximum(df, 1.0), 0).astype(float)


def switch_shift(Y: np.ndarray, X: np.ndarray, base: int, k: int, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per switch (columns 1..k of X), the variance a trial-shared shift adds to the mean of the per-seed effects
    (`trial_shift` times the effect's squared weight on each training) and its df."""
    L = np.eye(X.shape[1])[1:1 + k]
    return contrast_shift(Y, X, base, L, groups)


def trial_shift(Y: np.ndarray, X: np.ndarray, base: int, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a shift shared by the repeats of one trial adds to the variance of a mean over the replicates Y
    (... x replicates x rows, fitted on X), per unit weight of a training, and its df: `shared_shift` of the
    residuals times sum over blocks of (the block's replicates / all replicates)^2. Each block trains its own
    trials, so the blocks' shifts are independent and average out as 1 / blocks (with equal blocks); within a
    block the R repeats share theirs, which the seed-to-seed variance does not see."""
    P, _, used = _design_fit(X, base)
    Xu = X[:, used]
    fitted = (np.asarray(Y, dtype=float) @ P[used].T) @ Xu.T
    E = np.asarray(Y, dtype=float) - fitted
    df_res = X.shape[0] - int(np.linalg.matrix_rank(Xu))
    tau2, df = shared_shift(E, groups, df_res)
    ok = np.isfinite(E).all(axis=-1).astype(float)
    levels = np.unique(np.asarray(groups))
    n_g = np.einsum("...r,rg->...g", ok, (np.asarray(groups)[:, None] == levels[None, :]).astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(n_g.sum(axis=-1) > 0, (n_g**2).sum(axis=-1) / np.maximum(n_g.sum(axis=-1), 1) ** 2, 1.0)
    return tau2 * weight, df


def contrast_shift(Y: np.ndarray, X: np.ndarray, base: int, L: np.ndarray, groups: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """`switch_shift` for any linear combinations `L` (rows) of X's coefficients."""
    P, _, _ = _design_fit(X, base)
    tau2, df = trial_shift(Y, X, base, groups)
    weight = ((np.asarray(L, dtype=float) @ P) ** 2).sum(axis=-1)
    return tau2[..., None] * weight, np.broadcast_to(df[..., None], (*df.shape, len(weight)))


def higher_aliases(x: np.ndarray, names: Sequence[str], word: Sequence[int], max_order: int = 3) -> list[str]:
    """Effects of up to `max_order` factors whose +-1 column equals the product of `word`'s (up to sign) in
    one replicate's design: x (rows x factors, +-1; depth as a factor when it has two levels), `names` its
    columns. In a regular fraction these are the aliases the defining relation gives (a x depth and the
    three-way of the other augmentations in the default's half fraction); empty in a full factorial."""
    target = np.prod(x[:, list(word)], axis=1)
    out = []
    for order in range(1, max_order + 1):
        for other in itertools.combinations(range(x.shape[1]), order):
            if set(other) == set(word):
                continue
            col = np.prod(x[:, list(other)], axis=1)
            if np.all(col == target) or np.all(col == -target):
                out.append(" x ".join(names[i] for i in other))
    return out


def interaction_design(X: np.ndarray, base: int, k: int, ia: int, ib: int | None) -> tuple[np.ndarray, int, int]:
    """A replicate design (`replicate_design`: intercept, k switches, depth dummies, then magnitude terms from
    `base`) with one interaction added before the magnitude terms: switch ia x switch ib, or (ib None) switch
    ia x every depth dummy, all of a's depth slopes free. Returns the design, its new `base`, and the column
    of the contrast (a x b; a's effect at the deepest depth minus at the shallowest)."""
    if ib is None:
        extra = X[:, 1 + ia:2 + ia] * X[:, 1 + k:base]
    else:
        extra = (X[:, 1 + ia] * X[:, 1 + ib])[:, None]
    Xe = np.column_stack([X[:, :base], extra, X[:, base:]])
    return Xe, base + extra.shape[1], base + extra.shape[1] - 1
