"""Whole factorial sweeps off the nominal model, simulated in bulk, written independently of augsweep's statistics.

`sweeps` returns what N sweeps of the default's size would write (4 augmentations, the 16-run full factorial,
one depth, R seeds per block, a cap of `blocks` blocks) as one array of outcomes, Y[sim, block*R + r, point]
(NaN where a design point has no finished training). Only the design comes from augsweep (the points and
magnitudes the sweep enqueues, since they are under test); outcomes, failures, retries and divergence are
simulated here from the stated model:

    loss = 0.3 + seed shift[b, r] + sum_a on_a * (effect_a + seed slope[b, r, a]) + dose-response
           + two-way interactions + trial shift (shared by the R repeats of one trial) + training noise

A failed design point is retried once on fresh seeds (its own seed shift and slopes), as the sweep does;
a diverged training is scored at CHANCE, as the sweep scores one that never reached a finite epoch.
`to_tables` turns one simulated sweep into the stores' (trial x repeat) table and trials frame.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from augsweep.experiment.design import magnitude_levels, two_level_design

AUGS = ["contrast", "brightness", "rotation", "warp"]
RANGES = {"contrast": {"factor": (0.1, 0.5)}, "brightness": {"factor": (0.05, 0.2)},
          "rotation": {"factor": (0.05, 0.15)}, "warp": {"factor": (0.05, 0.15)}}
CHANCE = math.log(10)  # a diverged training with no finite epoch (10 classes)


def design(augs=AUGS, runs=16):
    """Switches (runs x k bool), magnitude positions in their ranges (runs x k, 0..1) and the flat levels."""
    plan = two_level_design(list(augs), runs)
    levels, _ = magnitude_levels(plan, {a: RANGES[a] for a in augs}, {})
    pos = np.array([[(levels[i][f"aug_{a}_factor"] - RANGES[a]["factor"][0])
                     / (RANGES[a]["factor"][1] - RANGES[a]["factor"][0]) for a in augs] for i in range(plan.runs)])
    return plan.matrix.copy(), pos, levels


def sweeps(rng: np.random.Generator, n: int, *, sd: float = 0.008, blocks: int = 2, repeats: int = 4,
           augs=AUGS, runs: int = 16, effects=None, dose: dict | None = None, interaction: float = 0.0,
           fail: float = 0.0, always_fail=(), diverge: float = 0.0, diverge_with: dict | None = None,
           noise: str = "normal", skewed_aug: str | None = None, trial_icc: float = 0.0,
           blowup: float = 0.0, split_sd: float = 0.0, conditional: tuple | None = None) -> np.ndarray:
    """Outcomes Y (n x blocks*repeats x runs) of n simulated sweeps; `sd` is the seed-to-seed sd of a per-seed
    effect on the nominal model.

    dose: {aug: change from the low to the high end of its range}, centred (its mean effect stays 0);
    interaction: every two-way interaction +-interaction (random sign per sweep, +-1 coding);
    fail: chance that one attempt of a trial fails; always_fail: design points that fail on every attempt;
    diverge / diverge_with: chance a training diverges, overall / added when an augmentation is on;
    noise: 'normal' or 'exp' (centred exponential: right-skewed) for every training;
    skewed_aug: trainings with this augmentation on get centred exponential noise (same mean and sd);
    trial_icc: intra-class correlation of the R repeats of one trial (a shift they share);
    blowup: chance of a rare large blow-up of one training (centred: mean 0);
    split_sd: sd of an augmentation's effect that changes with the block (a split drawn per block);
    conditional: (a, b, value): a changes the outcome by `value` when b is off and not at all when b is on.
    """
    S, pos, _ = design(augs, runs)
    Sf = S.astype(float)
    k, R, NB = len(augs), repeats, blocks
    eff = np.zeros(k) if effects is None else np.asarray(effects, float)
    slope_sd = 0.5 * sd
    # A per-seed effect is a difference of two means of runs/2 trainings: var = slope^2 + 4 train^2 / runs.
    train_sd = math.sqrt(runs / 4.0) * math.sqrt(sd**2 - slope_sd**2)
    trial_sd = train_sd * math.sqrt(trial_icc) if trial_icc else 0.0
    train_sd *= math.sqrt(1.0 - trial_icc)
    X = 2.0 * Sf - 1.0
    fixed = np.broadcast_to(0.3 + Sf @ eff, (n, runs)).copy()
    for i, j in itertools.combinations(range(k), 2):
        fixed += interaction * rng.choice([-1.0, 1.0], (n, 1)) * (X[:, i] * X[:, j])[None, :]
    if conditional:
        a, b, value = conditional
        fixed += (value * Sf[:, augs.index(a)] * (1.0 - Sf[:, augs.index(b)]))[None, :]
    for a, change in (dose or {}).items():
        j = augs.index(a)
        fixed += (Sf[:, j] * change * (pos[:, j] - 0.5))[None, :]

    def noise_draw(shape):
        if noise == "exp":
            z = train_sd * (rng.exponential(1.0, shape) - 1.0)
        else:
            z = rng.normal(0.0, train_sd, shape)
        if skewed_aug:
            on = S[:, augs.index(skewed_aug)]
            z = np.where(on, train_sd * (rng.exponential(1.0, shape) - 1.0), z)
        if blowup:
            big = 10.0 * train_sd
            z = z + np.where(rng.random(shape) < blowup, rng.exponential(big, shape), 0.0) - blowup * big
        return z

    shape = (n, NB, R, runs)
    # The block's common seeds: a shift and slopes per (block, repeat), shared by every point.
    common = rng.normal(0.0, 0.05, (n, NB, R, 1)) + rng.normal(0.0, slope_sd, (n, NB, R, k)) @ Sf.T
    # A retry's own seeds: a shift and slopes of its own for every (block, repeat, point).
    fresh = rng.normal(0.0, 0.05, shape) + (rng.normal(0.0, slope_sd, (*shape, k)) * Sf).sum(axis=-1)
    trial = rng.normal(0.0, trial_sd, (n, NB, 1, runs)) if trial_sd else 0.0
    block_eff = rng.normal(0.0, split_sd, (n, NB, 1, k)) @ Sf.T if split_sd else 0.0
    y_first = fixed[:, None, None, :] + common + trial + block_eff + noise_draw(shape)
    y_retry = fixed[:, None, None, :] + fresh + trial + block_eff + noise_draw(shape)
    f1 = rng.random((n, NB, 1, runs)) < fail
    f2 = rng.random((n, NB, 1, runs)) < fail
    if always_fail:
        f1[..., list(always_fail)] = True
        f2[..., list(always_fail)] = True
    y = np.where(f1, y_retry, y_first)
    y = np.where(f1 & f2, np.nan, y)
    p_div = np.full(runs, diverge)
    for a, p in (diverge_with or {}).items():
        p_div = p_div + p * Sf[:, augs.index(a)]
    y = np.where(rng.random(shape) < p_div, CHANCE, y)
    return y.reshape(n, NB * R, runs)


def to_tables(Y: np.ndarray, rng: np.random.Generator, *, repeats: int = 4, augs=AUGS, runs: int = 16,
              done: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One simulated sweep (Y: blocks*R x runs) as the stores hold it: the (trial x repeat) table of COMPLETE
    trials and the trials frame, trials numbered in a shuffled run order per block. `done`: only the first
    `done` trials have finished (the rest RUNNING or WAITING), as a report made during the sweep sees it."""
    S, _, levels = design(augs, runs)
    NB = Y.shape[0] // repeats
    rows, trials, number = [], [], 0
    for b in range(NB):
        for point in rng.permutation(runs):
            yb = Y[b * repeats:(b + 1) * repeats, point]
            attempts = 2 if np.isnan(yb).all() else 1
            for attempt in range(attempts):
                finished = done is None or number < done
                ok = attempt == attempts - 1 and not np.isnan(yb).all()
                state = ("COMPLETE" if ok else "FAIL") if finished else ("RUNNING" if number == done else "WAITING")
                trials.append({"trial": number, "state": state, "block": b, "design_point": int(point),
                               "failure_reason": "" if ok else "RuntimeError: simulated", "config_name": ""})
                if state == "COMPLETE":
                    for r in range(repeats):
                        row = {"trial": number, "block": b, "repeat": r, "depth": 2, "design_point": int(point),
                               "best_val_loss": float(yb[r]), "diverged": bool(yb[r] == CHANCE)}
                        for j, a in enumerate(augs):
                            row[f"aug_{a}"] = bool(S[point, j])
                            if S[point, j]:
                                row[f"aug_{a}_factor"] = levels[point][f"aug_{a}_factor"]
                        rows.append(row)
                number += 1
    return pd.DataFrame(rows), pd.DataFrame(trials)


def design_matrix(augs=AUGS, runs: int = 16):
    """The design X (runs x columns) a complete seed replicate of these sweeps is fitted on, built by the
    production `inference.fits.replicate_design` from the table's columns, and where its magnitude terms start."""
    from augsweep.inference import fits

    S, _, levels = design(augs, runs)
    mags = [(j, f"aug_{a}_factor", np.array([levels[i][f"aug_{a}_factor"] if S[i, j] else np.nan
                                              for i in range(runs)])) for j, a in enumerate(augs)]
    X, base, _ = fits.replicate_design(S.astype(float), np.full(runs, 2), mags)
    return X, base
