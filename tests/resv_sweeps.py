"""Sweeps of the default's design, simulated in bulk and written independently of augsweep's statistics.

The design is the default's: four switches (flip, contrast, rotation, warp) and depth 2/3 in the 16-run
resolution V half fraction (`experiment.design.two_level_design`, the one thing taken from augsweep: the points a
sweep enqueues), magnitudes at their midpoints, R seed replicates per block. One training's outcome:

    0.35 + 0.05 deep + sum_a on_a (effect_a + seed slope[b, r, a]) + seed intercept[b, r] (sd 0.05)
         + trial shift (shared by the R repeats of one trial, ICC `icc` of the training noise)
         + training noise (sd sqrt(3) sd) + three-way interaction (+-1 coding)

so that one replicate's main-effect estimate has sd `sd` (slopes sd 0.5 sd; 0.25 sd^2 + 3 sd^2 / 4). `skew`:
one augmentation's per-seed slope is `high` on a fraction `p` of the seeds and `low` on the rest (mean 0 when
p high + (1 - p) low = 0). `truths` gives every row's true value from the expected outcome of every point of the
full 2^5 factorial, so aliased rows are judged against their own interaction, not their alias.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from augsweep.experiment.design import two_level_design

AUGS = ["flip", "contrast", "rotation", "warp"]


def design() -> tuple[np.ndarray, np.ndarray]:
    """Switches (16 x 4, 0/1) and depth (16, 2 or 3) of the resolution V half fraction."""
    m = two_level_design([*AUGS, "depth"], 16).matrix
    return m[:, :4].astype(float), np.where(m[:, 4], 3, 2)


def expected(S: np.ndarray, depth: np.ndarray, effects, three_way: float, three: tuple[int, ...]) -> np.ndarray:
    """Expected outcome of each point (S: points x 4, depth: points)."""
    x = 2.0 * S - 1.0
    y = 0.35 + 0.05 * (depth == 3) + S @ np.asarray(effects, float)
    if three_way:
        cols = [x[:, i] if i < 4 else np.where(depth == 3, 1.0, -1.0) for i in three]
        y = y + three_way * np.prod(cols, axis=0)
    return y


def sweeps(rng: np.random.Generator, n: int, *, sd: float = 0.02, repeats: int = 4, blocks: int = 2,
           effects=(0.0, 0.0, 0.0, 0.0), icc: float = 0.0, skew: tuple | None = None, three_way: float = 0.0,
           three: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    """Y (n x blocks*repeats x 16). skew: (augmentation index, p, high, low)."""
    S, depth = design()
    k, R, NB = 4, repeats, blocks
    fixed = expected(S, depth, effects, three_way, three)
    noise_sd = math.sqrt(3.0) * sd
    shape = (n, NB, R, 16)
    slopes = rng.normal(0.0, 0.5 * sd, (n, NB, R, k))
    if skew is not None:
        a, p, high, low = skew
        slopes[..., a] = np.where(rng.random((n, NB, R)) < p, high, low)
    y = (fixed + rng.normal(0.0, 0.05, (n, NB, R, 1)) + slopes @ S.T
         + rng.normal(0.0, noise_sd * math.sqrt(icc), (n, NB, 1, 16))
         + rng.normal(0.0, noise_sd * math.sqrt(1.0 - icc), shape))
    return y.reshape(n, NB * R, 16)


def truths(effects=(0.0, 0.0, 0.0, 0.0), three_way: float = 0.0, three: tuple[int, ...] = (0, 1, 2),
           skew_mean: float = 0.0, skew_aug: int | None = None) -> dict[str, np.ndarray]:
    """True values of every row: main effects, a x depth (deep minus shallow), a x b (a's effect with b on minus
    off), configurations of the design against none at their depth (NaN: no none at that depth)."""
    eff = np.asarray(effects, float).copy()
    if skew_aug is not None:
        eff[skew_aug] += skew_mean
    full = np.array(list(itertools.product([0.0, 1.0], repeat=5)))
    Sf, df = full[:, :4], np.where(full[:, 4] > 0, 3, 2)
    yf = expected(Sf, df, eff, three_way, three)
    main = np.array([yf[Sf[:, a] == 1].mean() - yf[Sf[:, a] == 0].mean() for a in range(4)])

    def cell(mask):
        return yf[mask].mean()

    dep = np.array([(cell((Sf[:, a] == 1) & (df == 3)) - cell((Sf[:, a] == 0) & (df == 3)))
                    - (cell((Sf[:, a] == 1) & (df == 2)) - cell((Sf[:, a] == 0) & (df == 2))) for a in range(4)])
    pr = np.array([(cell((Sf[:, a] == 1) & (Sf[:, b] == 1)) - cell((Sf[:, a] == 0) & (Sf[:, b] == 1)))
                   - (cell((Sf[:, a] == 1) & (Sf[:, b] == 0)) - cell((Sf[:, a] == 0) & (Sf[:, b] == 0)))
                   for a, b in itertools.combinations(range(4), 2)])
    S, depth = design()
    y = expected(S, depth, eff, three_way, three)
    none = ~S.astype(bool).any(axis=1)
    conf = np.array([y[i] - y[none & (depth == depth[i])][0] if (none & (depth == depth[i])).any() else np.nan
                     for i in range(16)])
    return {"effects": main, "depth": dep, "pairs": pr, "configurations": conf}


def false_rows(codes: np.ndarray, truth: np.ndarray, margin: float) -> np.ndarray:
    """Rows whose verdict contradicts their truth: helps with truth >= 0, hurts with truth <= 0, negligible with
    |truth| >= margin (codes: 1 helps, 2 hurts, 3 negligible)."""
    t = np.asarray(truth, float)
    return (((codes == 1) & (t >= 0)) | ((codes == 2) & (t <= 0))
            | ((codes == 3) & (np.abs(t) >= margin - 1e-12)))
