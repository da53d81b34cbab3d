"""The report's and the stopping rule's decisions on thousands of simulated sweeps at once, through production's
array functions: `fits.replicate_design` / `fit_replicates` / `switch_shift` / `trial_shift` /
`interaction_design` / `contrast_shift`, `pairs.pair_verdicts`, `alpha.plan_levels` / `gate_levels`,
`core.decide_arrays` / `decided` / `should_stop`. It is what `inference.decide_sweep` and
`report.configurations` do on the stores' tables, stacked over sweeps (the tests check the two agree).

Y[sim, replicate, point] holds the outcomes of complete seed replicates of one design (S: points x k switches,
depth: points); replicates are block-major, `repeats` per block. No pandas inside.
"""

from __future__ import annotations

import itertools

import numpy as np

from augsweep import inference as inf
from augsweep.inference import fits, pairs

TABLES = ("effects", "depth", "pairs", "conditional", "configurations", "divergence")


def configuration_columns(S: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each design point, the point with no augmentation at its depth (-1: none trained), and whether the
    point is itself that baseline."""
    none = ~S.astype(bool).any(axis=1)
    base = np.array([next((j for j in range(len(S)) if none[j] and depth[j] == depth[i]), -1)
                     for i in range(len(S))])
    return base, none


class Driver:
    """One design's vectorised verdicts; `run` takes every look of the stopping rule."""

    def __init__(self, S: np.ndarray, depth: np.ndarray, *, repeats: int, looks: int, margin: float,
                 alpha: float = 0.05, assume_no_higher: bool = False, design: tuple | None = None,
                 planned_looks: int | None = None, diverged_value: float | None = None):
        self.S, self.depth = S.astype(float), np.asarray(depth)
        self.k = S.shape[1]
        self.R, self.L, self.margin, self.alpha = repeats, looks, margin, alpha
        self.planned = planned_looks
        self.diverged_value = diverged_value  # the score of a diverged training (ln K), to count divergences
        # `design`: (X, base) with magnitude terms, as `fits.replicate_design` builds it from a table's columns
        self.X, self.base = design if design is not None else fits.replicate_design(self.S, self.depth)[:2]
        self.pairs = list(itertools.combinations(range(self.k), 2))
        x = 2.0 * self.S - 1.0
        levels = np.unique(self.depth)
        self.two_depths = len(levels) == 2
        cols, names = x, [f"a{i}" for i in range(self.k)]
        if self.two_depths:
            cols, names = np.column_stack([x, np.where(self.depth == levels[1], 1.0, -1.0)]), [*names, "depth"]

        def aliased(word):  # production's alias finder: three-factor aliases hold a row's verdict by default
            return any(a.count(" x ") >= 2 for a in fits.higher_aliases(cols, names, word, 3))

        self.depth_free = np.array([assume_no_higher or not aliased([i, self.k]) for i in range(self.k)]) \
            if self.two_depths else np.zeros(self.k, bool)
        self.pair_free = np.array([assume_no_higher or not aliased(list(p)) for p in self.pairs])
        self.separates = pairs.separates_pairs(x, self.depth)
        self.conf_base, self.conf_none = configuration_columns(S, self.depth)
        self.conf_cols = np.flatnonzero((self.conf_base >= 0) & ~self.conf_none)

    def rows(self, divergence: bool = False) -> dict[str, int]:
        return {"effects": self.k, "depth": int(self.depth_free.sum()) if self.two_depths else 0,
                "pairs": int(self.pair_free.sum()) if self.separates else 0,
                "configurations": 1 if self.conf_none.any() else 0, "divergence": self.k if divergence else 0}

    def levels(self, look: int, passing: np.ndarray, divergence: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Each table's level per sweep at `look`, given the fraction of main effects decided helps/hurts (and
        whether the sweep holds a diverged training: its own table then)."""
        a_look = inf.plan_levels(self.alpha, self.L, planned_looks=self.planned, seeds_per_block=self.R,
                                rows=self.k)[look - 1]
        div = np.zeros(len(passing), bool) if divergence is None else divergence
        table = {(p, d): inf.gate_levels(a_look, self.rows(d), p / self.k)
                 for p in range(self.k + 1) for d in (False, True)}
        idx = np.rint(passing * self.k).astype(int)
        return {t: np.array([table[(int(i), bool(d))][t] for i, d in zip(idx, div)])
                for t in table[(0, False)]}

    def look(self, Y: np.ndarray, look: int) -> dict[str, np.ndarray]:
        """Codes of every table at `look` (Y already cut to the look's replicates)."""
        n = Y.shape[0]
        groups = np.repeat(np.arange(look), self.R)
        B = fits.fit_replicates(Y, self.X, self.base)[0][..., 1:1 + self.k]
        shift = fits.switch_shift(Y, self.X, self.base, self.k, groups)
        div = None
        if self.diverged_value is not None:
            complete = np.isfinite(Y).all(axis=-1)  # production counts the complete replicates only
            flags = (Y == self.diverged_value) & complete[..., None]
            on = self.S.astype(bool)
            reps = complete.sum(axis=1)[:, None]
            counts = np.stack([(flags[..., None] & on).sum(axis=(1, 2)), reps * on.sum(0),
                               (flags[..., None] & ~on).sum(axis=(1, 2)), reps * (~on).sum(0)])
            div = flags.any(axis=(1, 2))
        first = self.levels(look, np.zeros(n), div)
        eff = inf.decide_arrays(B, first["effects"][:, None], self.margin, shift)
        passing = np.isin(eff["code"], (1, 2)).mean(axis=-1)
        lv = self.levels(look, passing, div)
        out = {"effects": eff["code"], "levels": lv}
        if div is not None:
            out["divergence"] = np.where(div[:, None], inf.core.divergence_codes(*counts, lv["divergence"][:, None])
                                         ["code"], 0)
        if self.two_depths:
            cols, vs, ds = [], [], []
            for i in range(self.k):
                Xe, base_e, target = fits.interaction_design(self.X, self.base, self.k, i, None)
                cols.append(fits.fit_replicates(Y, Xe, base_e)[0][..., target])
                v, d = fits.contrast_shift(Y, Xe, base_e, np.eye(Xe.shape[1])[target][None, :], groups)
                vs.append(v[..., 0]), ds.append(d[..., 0])
            Bd = np.stack(cols, axis=-1)
            Bd = np.where(self.depth_free, Bd, np.nan)
            out["depth"] = inf.decide_arrays(Bd, lv["depth"][:, None], self.margin,
                                             (np.stack(vs, -1), np.stack(ds, -1)))["code"]
        if self.separates and self.pairs:
            rp, rc = pairs.pair_verdicts((Y, self.S, self.depth, groups), self.pairs, alpha_pairs=lv["pairs"],
                                         margin=self.margin, tested=self.pair_free)
            out["pairs"], out["conditional"] = rp["code"], rc["code"]
        if len(self.conf_cols):
            D = Y[..., self.conf_cols] - Y[..., self.conf_base[self.conf_cols]]
            tau2, df = fits.trial_shift(Y, self.X, self.base, groups)
            extra = (np.broadcast_to(2.0 * tau2[:, None], (n, len(self.conf_cols))),
                     np.broadcast_to(df[:, None], (n, len(self.conf_cols))))
            out["configurations"] = inf.decide_arrays(D, lv["configurations"][:, None], self.margin, extra)["code"]
        out["decided"] = inf.decided(eff["code"], out.get("pairs"), out.get("conditional"),
                                     self.pairs if "pairs" in out else (), self.k)
        return out

    def run(self, Y: np.ndarray) -> dict:
        """Every look the stopping rule takes: per table the codes where each sweep stopped, whether a row was
        ever claimed (helps/hurts) or called negligible at a look taken, and the looks taken."""
        n = Y.shape[0]
        stopped = np.zeros(n, dtype=bool)
        final, claimed, negl = {}, {}, {}
        taken = np.zeros(n, dtype=int)
        per_look = []
        for look in range(1, self.L + 1):
            o = self.look(Y[:, :look * self.R], look)
            per_look.append(o)
            live = ~stopped
            for t in TABLES:
                if t not in o:
                    continue
                c = o[t]
                final[t] = np.where(live[:, None], c, final.get(t, np.zeros_like(c)))
                claimed[t] = claimed.get(t, np.zeros(c.shape, bool)) | (live[:, None] & np.isin(c, (1, 2)))
                negl[t] = negl.get(t, np.zeros(c.shape, bool)) | (live[:, None] & (c == 3))
            taken = np.where(live, look, taken)
            stopped |= inf.should_stop(o["decided"], look, self.L)
        return {"final": final, "claimed": claimed, "negligible": negl, "taken": taken, "looks": per_look}
