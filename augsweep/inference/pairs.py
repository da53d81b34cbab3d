"""Pairs and conditional effects: augmentation x augmentation contrasts of a design that separates them, and,
for a decided interaction, each augmentation's effect with the other off and on, in one Šidák family with the
marginal effects. Arrays only.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from .core import COND_KINDS, decide_arrays
from .fits import contrast_shift, depth_dummies, fit_replicates

__all__ = ["COND_KINDS", "conditional_from_beta", "conditional_level", "decide_conditional", "pair_design",
           "pair_verdicts", "separates_pairs"]


def separates_pairs(x: np.ndarray, depth: np.ndarray) -> bool:
    """Whether one replicate's +-1 switches `x` (rows x k) separate every two-augmentation product from the main
    effects and from each other (a full factorial or a resolution >= V fraction: the model with every main
    effect and every two-way product has full column rank), and, with two depths, from depth and every
    augmentation x depth (depth may be a factor of the plan)."""
    k = x.shape[1]
    pairs = list(itertools.combinations(range(k), 2))
    X = np.column_stack([np.ones(len(x)), x, *[x[:, a] * x[:, b] for a, b in pairs]])
    levels = np.unique(depth)
    if len(levels) == 2:
        z = np.where(depth == levels[1], 1.0, -1.0)
        X = np.column_stack([X, z, x * z[:, None]])
    return bool(np.linalg.matrix_rank(X) == X.shape[1])


def pair_design(S: np.ndarray, depth: np.ndarray, ia: int, ib: int) -> np.ndarray:
    """One replicate's fit for the pair (ia, ib): intercept, switches, depth dummies and their product (last
    column): a's effect with b off is column 1 + ia, with b on that plus the last column."""
    return np.column_stack([np.ones(len(S)), S, depth_dummies(depth), S[:, ia] * S[:, ib]])


def conditional_from_beta(beta: np.ndarray, ia: int, ib: int) -> np.ndarray:
    """(... x 4) conditional effects from a pair fit's coefficients: a | b off, a | b on, b | a off, b | a on."""
    ab = beta[..., -1]
    a, b = beta[..., 1 + ia], beta[..., 1 + ib]
    return np.stack([a, a + ab, b, b + ab], axis=-1)


def conditional_level(alpha_pair_row, n_conditional: int = 4) -> np.ndarray:
    """Per-comparison level of a conditional effect: a decided pair passes its own per-row level on to its
    `n_conditional` conditional rows (Šidák over them), the graph's edge from an interaction to the effects it
    splits; a pair that is not decided passes nothing."""
    a = np.asarray(alpha_pair_row, dtype=float)
    return -np.expm1(np.log1p(-a) / max(int(n_conditional), 1))


def decide_conditional(B: np.ndarray, decided_pairs: np.ndarray, alpha_pair_row, margin: float,
                       shift=None) -> dict[str, np.ndarray]:
    """Verdicts on conditional effects (... x replicates x 4*pairs, the `COND_KINDS` of each pair in turn),
    only for the pairs whose interaction is decided `helps`/`hurts` (`decided_pairs`, ... x pairs; the others
    are NaN, not tested): each at `conditional_level` of the pair's per-row level `alpha_pair_row` (...), so the
    alpha a decided pair passes on is spent once, over its four rows."""
    mask = np.repeat(np.asarray(decided_pairs, dtype=bool), 4, axis=-1)
    B = np.where(mask[..., None, :], B, np.nan)
    m = mask.sum(axis=-1, keepdims=True)
    per = conditional_level(np.asarray(alpha_pair_row, dtype=float)[..., None], 4)
    # decide_arrays applies Šidák over the m tested rows; give it the level that returns `per` exactly
    family = -np.expm1(np.maximum(m, 1) * np.log1p(-per))
    return decide_arrays(B, family, margin, shift)


def pair_verdicts(replicates: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], pairs: Sequence[tuple[int, int]],
                  *, alpha_pairs, margin: float, tested: np.ndarray | None = None) -> tuple[dict, dict]:
    """The aug x aug contrasts and the conditional effects of the decided ones, from `replicates` = (Y, S, depth,
    groups): stacked complete seed replicates Y (... x replicates x rows, rows in the order of S/depth;
    `groups`: each replicate's block): one fit per pair with its product term, a trial-shared shift widening
    each interval (`contrast_shift`); contrasts at look level `alpha_pairs` (... ; Šidák over the pairs tested:
    `tested`, default all, leaves out the aliased ones), conditional effects of the decided ones by
    `decide_conditional` at the level each decided pair passes on. Returns (pairs' `decide_arrays`,
    conditional's)."""
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

    def cat(xs):
        return np.concatenate(xs, axis=-1)

    b_pair = cat(b_int)
    if tested is not None:
        b_pair = np.where(np.asarray(tested, dtype=bool), b_pair, np.nan)
    a_pairs = np.asarray(alpha_pairs, dtype=float)
    res_p = decide_arrays(b_pair, a_pairs[..., None] if a_pairs.ndim else a_pairs, margin, (cat(v_int), cat(d_int)))
    m = res_p["n_family"][..., :1].astype(float)
    a_row = -np.expm1(np.log1p(-(a_pairs[..., None] if a_pairs.ndim else a_pairs)) / np.maximum(m, 1))[..., 0]
    res_c = decide_conditional(cat(b_cond), np.isin(res_p["code"], (1, 2)), a_row, margin,
                               shift=(cat(v_cond), cat(d_cond)))
    return res_p, res_c
