"""The verdict rule: planted effects, A/A error rates over sequential looks, power, ablations, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from augsweep import inference as inf
from augsweep.experiment.design import two_level_design
from augsweep.inference import fits, frames
from tests.sweep_driver import Driver

AUGS = ["flip", "contrast", "rotation", "warp"]


def simulate_sweep(rng: np.random.Generator, *, augs=AUGS, runs=8, depths=(1, 2, 3), repeats=2, blocks=5,
                   planted=None, noise_sd=0.04, seed_slope_sd=0.01, depth_step=0.3, inter_sd=0.03,
                   seed_sd=0.05, fail_rate=0.0, inter_depth_sd=None, as_arrays=False) -> pd.DataFrame:
    """Tidy table (trial x repeat) of a replicated-block sweep on a two-level design crossed with depths.

    Loss = depth effect (large) + per-seed intercept (common to the whole replicate) + switches @
    (planted effects + per-seed random slopes) + aug x depth and aug x aug interactions (centred, so
    they average to zero over the design) + t3 noise whose scale grows with depth and with the number
    of augmentations on.
    """
    k = len(augs)
    plan = two_level_design(list(augs), runs)
    M = plan.matrix.astype(float)
    P = np.repeat(M, len(depths), axis=0)  # run-major, as `crossed`
    D = np.tile(np.asarray(depths), len(M))
    dlev = np.searchsorted(np.asarray(depths), D)
    n_pts, n_rep = len(P), blocks * repeats
    effect = np.zeros(k) if planted is None else np.asarray(planted, dtype=float)
    # interactions fixed for the whole sweep (they are properties of the task, not of the seed)
    inter_depth = rng.normal(0, inter_sd if inter_depth_sd is None else inter_depth_sd, (k, len(depths)))
    inter_depth -= inter_depth.mean(axis=1, keepdims=True)
    X = 2 * P - 1
    inter_pair = rng.normal(0, inter_sd, (k, k))
    pair_term = np.einsum("pi,ij,pj->p", X, np.triu(inter_pair, 1), X)
    fixed = 1.0 + depth_step * dlev - 0.1 * dlev**2 + P @ effect + (P * inter_depth[:, dlev].T).sum(axis=1) + pair_term
    slopes = rng.normal(0, seed_slope_sd, (n_rep, k))
    intercept = rng.normal(0, seed_sd, (n_rep, 1))
    scale = noise_sd * (0.7 + 0.3 * dlev + 0.1 * P.sum(axis=1)) / (0.7 + 0.3 * dlev.mean() + 0.1 * k / 2)
    noise = sps.t.rvs(3, size=(n_rep, n_pts), random_state=rng) / math.sqrt(3.0) * scale
    Y = fixed[None, :] + intercept + slopes @ P.T + noise
    if fail_rate:
        Y[rng.random(Y.shape) < fail_rate] = np.nan
    if as_arrays:
        return Y, P, D
    return sweep_table(Y, P, D, augs, repeats)


def sweep_table(Y: np.ndarray, P: np.ndarray, D: np.ndarray, augs, repeats: int) -> pd.DataFrame:
    """One simulated sweep's outcomes (Y: replicates x points, block-major) as the stores' (trial x repeat) table."""
    n_rep, n_pts = Y.shape
    rep = np.arange(n_rep)
    table = pd.DataFrame({
        "trial": np.repeat(rep // repeats, n_pts) * n_pts + np.tile(np.arange(n_pts), n_rep),
        "block": np.repeat(rep // repeats, n_pts),
        "repeat": np.repeat(rep % repeats, n_pts),
        "depth": np.tile(D, n_rep),
        **{f"aug_{a}": np.tile(P[:, j].astype(bool), n_rep) for j, a in enumerate(augs)},
        "best_val_loss": Y.ravel(),
    })
    return table.sort_values(["trial", "repeat"], kind="stable").reset_index(drop=True)


def sequential(table: pd.DataFrame, augs, *, margin, max_looks, alpha=0.05, spending=inf.SPENDING):
    """Run the sweep's stopping rule over looks (one per block); return (any helps/hurts seen, final frame, looks)."""
    seeds = inf.seed_effects(table, augs)
    false_claim, frame = False, None
    for look in range(1, max_looks + 1):
        frame = inf.summarize(seeds[seeds["block"] < look], augs,
                              inf.VerdictRule(margin=margin, alpha=alpha, spending=spending, max_looks=max_looks), look)
        false_claim |= bool(frame["verdict"].isin(["helps", "hurts"]).any())
        if inf.should_stop(frame["verdict"].isin(inf.DECIDED).to_numpy(), look, max_looks):
            break
    return false_claim, frame, look


def sequential_arrays(rng, n: int, *, augs=AUGS, margin, max_looks, repeats, alpha=0.05, **kwargs):
    """`n` sweeps from `simulate_sweep` through the production rule at once (`fit_replicates`, `switch_shift`,
    `decide_arrays`: what `effects` does per table): whether any helps/hurts was seen, and the final codes."""
    sims = [simulate_sweep(rng, augs=augs, repeats=repeats, blocks=max_looks, as_arrays=True, **kwargs)
            for _ in range(n)]
    Y = np.stack([y for y, _, _ in sims])
    P, D = sims[0][1], sims[0][2]
    X, base, _ = fits.replicate_design(P.astype(float), D)
    k = len(augs)
    B = fits.fit_replicates(Y, X, base)[0][..., 1:1 + k]
    stopped = np.zeros(n, dtype=bool)
    seen = np.zeros(n, dtype=bool)
    final = np.zeros((n, k), dtype=int)
    for look in range(1, max_looks + 1):
        rows = look * repeats
        shift = fits.switch_shift(Y[:, :rows], X, base, k, np.repeat(np.arange(look), repeats))
        code = inf.decide_arrays(B[:, :rows], inf.look_alpha(alpha, look, max_looks), margin, shift)["code"]
        seen |= ~stopped & np.isin(code, (1, 2)).any(axis=-1)
        final = np.where(stopped[:, None], final, code)
        stopped |= (code != 0).all(axis=-1)
    return seen, final


def test_array_rule_equals_the_table_rule():
    # The vectorised path below is the production `effects` on a table, sweep for sweep.
    seen, final = sequential_arrays(np.random.default_rng(77), 6, runs=16, depths=(1, 2), margin=0.03,
                                    max_looks=3, repeats=2, planted=[-0.05, 0, 0, 0.03])
    rng = np.random.default_rng(77)
    for i in range(6):
        t = simulate_sweep(rng, runs=16, depths=(1, 2), repeats=2, blocks=3, planted=[-0.05, 0, 0, 0.03])
        for look in range(1, 4):
            fr = inf.effects(t[t["block"] < look], AUGS, inf.VerdictRule(margin=0.03, max_looks=3), look)
            if inf.should_stop(fr["verdict"].isin(inf.DECIDED).to_numpy(), look, 3):
                break
        assert fr.set_index("augmentation").loc[AUGS, "verdict"].tolist() == list(inf.VERDICT_CODES[final[i]])


def mc_upper(p: float, n: int) -> float:
    # One-sided 99% binomial upper bound around the nominal rate: a correct procedure exceeds it by
    # Monte-Carlo chance in at most 1% of test runs (and the procedure is conservative, so far less).
    return p + sps.norm.ppf(0.99) * math.sqrt(p * (1 - p) / n)


# ----------------------------------------------------------------------------------------- planted


def test_planted_flip_helps_contrast_negligible():
    rng = np.random.default_rng(1)
    t = simulate_sweep(rng, augs=["flip", "contrast"], runs=4, planted=[-0.1, 0.0], blocks=6, repeats=2,
                       noise_sd=0.02, seed_slope_sd=0.005)
    fr = inf.effects(t, ["flip", "contrast"], inf.VerdictRule(margin=0.02))
    assert list(fr.columns) == inf.VERDICT_COLUMNS + inf.EXTRA_COLUMNS
    assert list(fr["augmentation"]) == ["flip", "contrast"]  # best first
    flip, contrast = fr.iloc[0], fr.iloc[1]
    assert flip["effect"] == pytest.approx(-0.1, abs=0.02) and flip["verdict"] == "helps"
    assert contrast["verdict"] == "negligible" and abs(contrast["effect"]) < 0.01
    assert flip["n_seeds"] == 12 and flip["n_with"] == flip["n_without"] == 12 * 6
    assert "t across 12 seeds, Šidák x2, look 1/1" in flip["ci_method"]


def test_p_value_matches_interval():
    rng = np.random.default_rng(2)
    for i in range(20):
        t = simulate_sweep(rng, planted=rng.normal(0, 0.03, 4), blocks=3, repeats=1)
        fr = inf.effects(t, AUGS, inf.VerdictRule(margin=0.02, max_looks=3), 2)
        excl = (fr["ci_low"] > 0) | (fr["ci_high"] < 0)
        assert ((fr["p_value"] < fr["alpha_look"]) == excl).all()


def test_spending_levels_sum_to_alpha():
    for spending in inf.SPENDINGS:
        levels = [inf.look_alpha(0.05, look, 5, spending) for look in range(1, 6)]
        assert all(x > 0 for x in levels) and sum(levels) == pytest.approx(0.05, abs=1e-12)
    assert inf.look_alpha(0.05, 1, 1) == pytest.approx(0.05)


# ---------------------------------------------------------------------------- A/A deterministic


def _deterministic_table(repeats: int, blocks: int) -> pd.DataFrame:
    """Trainings deterministic given the seed: effects of 1e-4 (identical on every seed) plus per-seed noise."""
    plan = two_level_design(AUGS, 16)
    P = np.repeat(plan.matrix, 2, axis=0)
    D = np.tile([1, 2], len(plan.matrix))
    rows = []
    for b in range(blocks):
        for r in range(repeats):
            seed = b * repeats + r
            shared = np.random.default_rng(seed).normal(0, 0.05)  # same for every point of the seed
            y = 0.5 + 0.2 * D + shared + 1e-4 * P.sum(axis=1)
            for i in range(len(P)):
                rows.append({"trial": b * len(P) + i, "block": b, "repeat": r, "depth": int(D[i]),
                             **{f"aug_{a}": bool(P[i, j]) for j, a in enumerate(AUGS)}, "best_val_loss": y[i]})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("repeats", [1, 3])
def test_aa_deterministic_never_helps_or_hurts(repeats):
    t = _deterministic_table(repeats, blocks=4)
    for blocks in range(1, 5):
        fr = inf.effects(t[t["block"] < blocks], AUGS, inf.VerdictRule(margin=0.02))
        assert not fr["verdict"].isin(["helps", "hurts"]).any()
        if blocks * repeats >= 2:
            assert (fr["verdict"] == "negligible").all()
            assert fr["effect"].to_numpy() == pytest.approx(1e-4, abs=1e-9)


def test_single_seed_replicate_is_undecided():
    fr = inf.effects(_deterministic_table(1, 1), AUGS, inf.VerdictRule(margin=0.02))
    assert (fr["verdict"] == "undecided").all()
    assert fr["ci_low"].isna().all() and fr["p_value"].isna().all()
    assert fr["note"].str.contains("fewer than 2 seed replicates").all()


# ------------------------------------------------------------------------- A/A sequential, power


@pytest.mark.parametrize("runs", [8, 16])
def test_aa_family_wise_error_across_looks(runs):
    # 4 augmentations, R=2, up to 5 blocks (looks), depth effects, interactions, t3 noise, seed slopes.
    n, rng = 2000, np.random.default_rng(100 + runs)
    seen, _ = sequential_arrays(rng, n, runs=runs, depths=(1, 2), seed_slope_sd=0.02, margin=0.03, max_looks=5,
                                repeats=2)
    assert seen.mean() <= mc_upper(0.05, n)


def test_power_and_negligible_sequential():
    # Assumption: per-training noise sd 0.04 (t3, heteroscedastic), seed slope sd 0.01, 4 augmentations
    # in 16 runs x 3 depths, R=2, cap 5 blocks. A 0.1 drop in val_loss must be found; margin 0.04.
    n, rng = 1000, np.random.default_rng(7)
    _, final = sequential_arrays(rng, n, runs=16, depths=(1, 2, 3), planted=[-0.1, 0.0, 0.0, 0.0], margin=0.04,
                                 max_looks=5, repeats=2)
    assert (final[:, 0] == 1).mean() >= 0.8
    assert (final[:, 1] == 3).mean() >= 0.7


def test_aa_whole_reports_at_the_default_design_size():
    # The default experiment's design: 4 augmentations in the 16-run full factorial, 4 repeats per block, a
    # cap of 2 blocks; heavy-tailed heteroscedastic noise, seed slopes, aug x aug interactions, no true effect.
    # The half fraction with 4 looks as well (the design a tighter cap gets). Vectorised: 1,000 sweeps each.
    n, rng = 1000, np.random.default_rng(302)
    false = 0
    for runs, blocks in ((16, 2), (8, 4)):
        seen, _ = sequential_arrays(rng, n, runs=runs, depths=(2,), repeats=4, inter_depth_sd=0.0,
                                    seed_slope_sd=0.01, noise_sd=0.02, margin=0.02, max_looks=blocks)
        false += seen.sum()
    assert false / (2 * n) <= mc_upper(0.05, 2 * n)


class TableRule(Driver):
    """`tests/sweep_driver.py`'s vectorised `decide_sweep` under the rule these tests state,
    `VerdictRule(margin, max_looks)`: seeds per block estimated from the data, so every look of the plan spends
    its share of alpha (a sweep's own rule, `for_sweep`, may skip a first look that cannot decide)."""

    def levels(self, look, passing, divergence=None):
        a_look = inf.plan_levels(self.alpha, self.L, rows=self.k)[look - 1]
        idx = np.rint(passing * self.k).astype(int)
        table = {p: inf.gate_levels(a_look, self.rows(), p / self.k) for p in range(self.k + 1)}
        return {t: np.array([table[int(i)][t] for i in idx]) for t in table[0]}


def claims(o: dict, tables) -> np.ndarray:
    """Per simulated sweep: any helps/hurts in any of `tables` at a look the stopping rule took."""
    return np.any([o["claimed"][t].any(axis=1) for t in tables if t in o["claimed"]], axis=0)


def assert_driver_is_the_table_path(d: TableRule, Y: np.ndarray, P, D, *, margin: float, looks: int,
                                    first: int = 4) -> None:
    """`decide_sweep` on each sweep's table gives the driver's codes (effects, augmentation x depth, pairs,
    conditional effects) and stopping decision at every look the stopping rule takes: on the first `first`
    sweeps of `Y` and on up to 10 in which the driver made a claim (the reports an A/A bound counts)."""
    claimed = np.flatnonzero(claims(d.run(Y), ("effects", "depth", "pairs", "conditional")))
    Y = Y[[*range(first), *claimed[claimed >= first][:10]]]
    o = d.run(Y)
    rule = inf.VerdictRule(margin=margin, max_looks=looks)
    for i in range(len(Y)):
        table = sweep_table(Y[i], P, D, AUGS, d.R)
        for look in range(1, int(o["taken"][i]) + 1):
            v = inf.decide_sweep(table[table["block"] < look], AUGS, rule, points=len(P), finished=range(look))
            codes = o["looks"][look - 1]
            got = inf.core.codes_of(v.effects.set_index("augmentation").loc[AUGS, "verdict"])
            assert (got == codes["effects"][i]).all(), (i, look)
            inter = v.interactions.set_index("term").loc[[f"{a} x depth" for a in AUGS], "verdict"]
            assert (inf.core.codes_of(inter) == codes["depth"][i]).all(), (i, look)
            if "pairs" in codes:
                terms = [f"{AUGS[a]} x {AUGS[b]}" for a, b in d.pairs]
                got = inf.core.codes_of(v.pairs.set_index("term").loc[terms, "verdict"])
                assert (got == codes["pairs"][i]).all(), (i, look)
            if "conditional" in codes:
                assert v.pair_codes is not None and (v.pair_codes.conditional == codes["conditional"][i]).all(), \
                    (i, look)
            assert v.should_stop(look, looks) == bool(inf.should_stop(codes["decided"][i], look, looks))


def test_aa_whole_reports_with_depth_contrasts():
    # Two depths crossed with the design: the effects and the augmentation x depth contrasts share the report's
    # alpha. 2,000 null sweeps of each design through the vectorised rule, which is `decide_sweep` sweep for
    # sweep (checked on a sample of their tables, look by look).
    n, rng, depths = 2000, np.random.default_rng(303), (1, 2)
    false = 0
    for runs, blocks in ((16, 2), (8, 4)):
        sims = [simulate_sweep(rng, runs=runs, depths=depths, repeats=4, blocks=blocks, inter_depth_sd=0.0,
                               seed_slope_sd=0.01, noise_sd=0.02, as_arrays=True) for _ in range(n)]
        Y, (_, P, D) = np.stack([y for y, _, _ in sims]), sims[0]
        d = TableRule(P, D, repeats=4, looks=blocks, margin=0.02)
        false += claims(d.run(Y), ("effects", "depth")).sum()
        assert_driver_is_the_table_path(d, Y, P, D, margin=0.02, looks=blocks)
    assert false / (2 * n) <= mc_upper(0.05, 2 * n)


def test_power_at_the_default_design_size():
    # Effects of the size the default experiment is meant to find (|0.05| in val_loss) under noise calibrated
    # to it (per-seed effects of its 16-run factorial varied with sd 0.006-0.008: training noise 0.012 and
    # seed slopes 0.005 give ~0.008): decided with the right sign within the cap in >= 80% of sweeps, and a
    # zero effect `negligible` in most.
    n, rng = 2000, np.random.default_rng(9)
    _, final = sequential_arrays(rng, n, runs=16, depths=(2,), planted=[0.05, 0.0, 0.0, -0.05], seed_slope_sd=0.005,
                                 noise_sd=0.012, margin=0.02, max_looks=2, repeats=4)
    assert ((final[:, 0] == 2) & (final[:, 3] == 1)).mean() >= 0.8
    assert (final[:, 1] == 3).mean() > 0.5


# ------------------------------------------------------------------------------------ ablation


def _ablation(rng, n_seeds, deltas, sd=0.04, slope_sd=0.01, as_array=False):
    """Variants 'base' and one per augmentation, trained on the same seeds (shared per-seed noise)."""
    shared = 1.0 + rng.normal(0, 0.05, n_seeds)
    names = ["base", *(f"+{a}" for a in deltas)]
    shift = np.array([0.0, *deltas.values()])[:, None]
    slope = np.vstack([np.zeros(n_seeds), rng.normal(0, slope_sd, (len(deltas), n_seeds))])
    y = shared + shift + slope + rng.normal(0, sd, (len(names), n_seeds))
    if as_array:
        return y
    runs = pd.DataFrame({"variant": np.repeat(names, n_seeds), "seed": np.tile(np.arange(n_seeds), len(names)),
                         "best_val_loss": y.ravel()})
    comps = pd.DataFrame({"augmentation": list(deltas), "comparison": "add-one-in",
                          "with_variant": [f"+{a}" for a in deltas], "without_variant": "base"})
    return runs, comps


def ablation_codes(y: np.ndarray, deltas: dict, alpha: float = 0.05, margin: float = 0.03) -> np.ndarray:
    """Verdict codes (sims x augmentations) of `_ablation` reports (y: sims x variant (base, +a...) x seed)
    through the array rule `ablation_effects` calls (one kind of comparison: `decide_arrays` on the per-seed
    differences at the whole alpha), checked equal to `ablation_effects` on the stores' runs for a sample."""
    codes = inf.decide_arrays(np.swapaxes(y[:, 1:] - y[:, [0]], 1, 2), alpha, margin)["code"]
    names, seeds = ["base", *(f"+{a}" for a in deltas)], y.shape[2]
    comps = pd.DataFrame({"augmentation": list(deltas), "comparison": "add-one-in",
                          "with_variant": [f"+{a}" for a in deltas], "without_variant": "base"})
    claimed = np.flatnonzero(np.isin(codes, (1, 2)).any(axis=1))
    for i in [*range(3), *claimed[:3]]:
        runs = pd.DataFrame({"variant": np.repeat(names, seeds), "seed": np.tile(np.arange(seeds), len(names)),
                             "best_val_loss": y[i].ravel()})
        fr = inf.ablation_effects(runs, comps, margin=margin, alpha=alpha).set_index("augmentation")
        assert (inf.core.codes_of(fr.loc[list(deltas), "verdict"]) == codes[i]).all(), i
    return codes


def test_ablation_aa_and_power():
    n, rng = 4000, np.random.default_rng(11)
    null = {a: 0.0 for a in AUGS}
    codes = ablation_codes(np.stack([_ablation(rng, 8, null, as_array=True) for _ in range(n)]), null)
    assert np.isin(codes, (1, 2)).any(axis=1).mean() <= mc_upper(0.05, n)
    planted = {"flip": -0.1, "contrast": 0.0, "rotation": 0.0, "warp": 0.0}
    codes = ablation_codes(np.stack([_ablation(rng, 10, planted, as_array=True) for _ in range(1000)]), planted)
    assert (codes[:, 0] == 1).mean() >= 0.8


def test_ablation_columns_and_seeds_needed():
    rng = np.random.default_rng(3)
    runs, comps = _ablation(rng, 6, {"flip": -0.05, "contrast": 0.0})
    loo = comps.assign(comparison="leave-one-out")
    fr = inf.ablation_effects(runs, pd.concat([comps, loo], ignore_index=True), margin=0.03)
    assert list(fr.columns[:12]) == ["augmentation", "comparison", *inf.VERDICT_COLUMNS[1:]]
    assert "seeds_needed" in fr and (fr["n_seeds"] == 6).all()
    assert (fr["ci_method"].str.contains("Šidák x2")).all()
    row = fr[(fr.augmentation == "flip") & (fr.comparison == "add-one-in")].iloc[0]
    need = row["seeds_needed"]
    # at `need` seeds the projected power condition holds, one seed fewer it does not
    a = inf.sidak_level(1 - 0.95 ** 0.5, 2)  # one family over both comparison kinds: each gets its Šidák share

    def f(n):
        return (sps.t.isf(a / 2, n - 1) + sps.t.ppf(0.8, n - 1)) * row["sd_seeds"] / math.sqrt(n)

    assert f(need) <= abs(row["effect"]) < f(need - 1)


# ---------------------------------------------------------------------------------- edge cases


def test_always_on_and_never_on_are_undecided_not_estimable():
    rng = np.random.default_rng(4)
    t = simulate_sweep(rng, augs=["flip", "contrast"], runs=4, blocks=3)
    t["aug_rotation"] = True
    t["aug_warp"] = False
    fr = inf.effects(t, ["flip", "contrast", "rotation", "warp"], inf.VerdictRule(margin=0.03))
    fr = fr.set_index("augmentation")
    for a in ("rotation", "warp"):
        assert fr.loc[a, "verdict"] == "undecided" and np.isnan(fr.loc[a, "effect"])
        assert "not estimable" in fr.loc[a, "note"]
    assert (fr.loc[["flip", "contrast"], "n_seeds"] == 6).all()
    assert fr.loc["flip", "n_family"] == 2  # untestable rows do not dilute the family


def test_failed_trials_inside_blocks():
    rng = np.random.default_rng(5)
    t = simulate_sweep(rng, runs=16, planted=[-0.1, 0, 0, 0], fail_rate=0.15, noise_sd=0.02)
    seeds = inf.seed_effects(t, AUGS)
    assert seeds["n_points"].max() < 48 and seeds["effect"].notna().all()
    fr = inf.effects(t, AUGS, inf.VerdictRule(margin=0.04)).set_index("augmentation")
    assert fr.loc["flip", "verdict"] == "helps"
    assert fr.loc["flip", "n_with"] + fr.loc["flip", "n_without"] == t["best_val_loss"].notna().sum()
    # a replicate left with fewer points than coefficients cannot estimate everything
    tiny = t[(t["block"] == 0) & (t["repeat"] == 0)].dropna().head(3)
    assert inf.seed_effects(tiny, AUGS)["effect"].isna().any()


def test_ols_recovers_effect_in_unbalanced_replicate():
    # Exact linear outcome with a missing run: least squares, not a difference of means, is exact.
    plan = two_level_design(AUGS, 16)
    P = plan.matrix.astype(float)
    y = 1 + P @ np.array([-0.1, 0.02, 0.0, 0.05])
    t = pd.DataFrame({"block": 0, "repeat": 0, **{f"aug_{a}": plan.matrix[:, j] for j, a in enumerate(AUGS)},
                      "best_val_loss": y})
    t.loc[[0, 5, 9], "best_val_loss"] = np.nan
    se = inf.seed_effects(t, AUGS)
    assert se["effect"].to_numpy() == pytest.approx([-0.1, 0.02, 0.0, 0.05], abs=1e-12)


def test_deterministic_output():
    rng = np.random.default_rng(6)
    t = simulate_sweep(rng, fail_rate=0.1)
    a = inf.effects(t, AUGS, inf.VerdictRule(margin=0.03, max_looks=5), 3)
    b = inf.effects(t.sample(frac=1.0, random_state=0), AUGS, inf.VerdictRule(margin=0.03, max_looks=5), 3)
    assert a.to_csv() == b.to_csv()


def test_blocks_to_decide_projection():
    rng = np.random.default_rng(8)
    t = simulate_sweep(rng, runs=16, blocks=2, planted=[-0.05, 0, 0, 0])
    fr = inf.effects(t, AUGS, inf.VerdictRule(margin=0.04, max_looks=5), 2)
    for r in fr.to_dict("records"):
        if r["verdict"] in inf.DECIDED:
            assert r["blocks_to_decide"] == 0
        elif np.isfinite(r["blocks_to_decide"]):
            assert 1 <= r["blocks_to_decide"] <= 3
    # At the cap, an undecided row projects beyond it (what a rerun with a larger `trials` would need).
    last = inf.effects(t, AUGS, inf.VerdictRule(margin=0.04, max_looks=2), 2)
    undecided = last[~last["verdict"].isin(inf.DECIDED)]
    assert len(undecided) and (undecided["blocks_to_decide"].dropna() >= 1).all()


def test_interaction_contrast_found_and_null():
    rng = np.random.default_rng(9)
    t = simulate_sweep(rng, runs=16, depths=(1, 2), blocks=5, inter_sd=0.0, noise_sd=0.02)
    X = t[["aug_flip", "aug_contrast"]].to_numpy()
    t["best_val_loss"] += 0.1 * (X[:, 0] & X[:, 1])  # flip and contrast together add 0.1
    t["best_val_loss"] += -0.08 * (t["aug_warp"] & (t["depth"] == 2))  # warp helps only when deep
    fr = inf.interaction_contrast(t, [("flip", "contrast"), ("rotation", "warp"), ("warp", "depth")], AUGS,
                                  inf.VerdictRule(margin=0.04)).set_index("term")
    assert fr.loc["flip x contrast", "verdict"] == "hurts"
    assert fr.loc["flip x contrast", "effect"] == pytest.approx(0.1, abs=0.03)
    assert fr.loc["warp x depth", "verdict"] == "helps"
    assert fr.loc["rotation x warp", "verdict"] in ("negligible", "undecided")


def test_interaction_aliased_in_half_fraction_is_not_claimed():
    # In the 8-run half fraction (warp = flip*contrast*rotation) flip x contrast equals rotation x warp.
    rng = np.random.default_rng(10)
    t = simulate_sweep(rng, runs=8, depths=(1, 2), blocks=5, inter_sd=0.0, noise_sd=0.02)
    X = t[["aug_flip", "aug_contrast"]].to_numpy()
    t["best_val_loss"] += 0.1 * (X[:, 0] & X[:, 1])
    fr = inf.interaction_contrast(t, [("rotation", "warp"), ("flip", "contrast")], AUGS, inf.VerdictRule(margin=0.04))
    assert (fr["verdict"] == "undecided").all()
    assert fr.set_index("term").loc["rotation x warp", "note"].startswith("aliased with flip x contrast")


def test_ablation_whole_reports_aa_both_comparisons_and_interaction_contrasts():
    # A null ablation report: leave-one-out and add-one-in rows for 4 augmentations and the 4 interaction
    # contrasts, alpha split as analyse_ablation splits it; at most 5% of reports carry any helps/hurts. 4,000
    # reports through the array rule the tables call (`decide_arrays` on the per-seed differences, each
    # comparison kind at its Šidák share), checked equal to `ablation_effects` / `interactions` on a sample.
    from augsweep.report.ablation_analysis import ADD_ONE_IN, LEAVE_ONE_OUT, interactions

    n, rng, seeds, k = 4000, np.random.default_rng(21), 6, len(AUGS)
    variants = ["base", "none", *(f"base-{a}" for a in AUGS), *(f"+{a}" for a in AUGS)]
    comps = pd.DataFrame(
        [{"augmentation": a, "comparison": LEAVE_ONE_OUT, "with_variant": "base", "without_variant": f"base-{a}"}
         for a in AUGS]
        + [{"augmentation": a, "comparison": ADD_ONE_IN, "with_variant": f"+{a}", "without_variant": "none"}
           for a in AUGS])
    a_paired, a_contrast = inf.split_alpha(0.05, [len(comps), len(AUGS)])
    a_kind = 1.0 - (1.0 - a_paired) ** (k / len(comps))
    shared = rng.normal(0, 0.05, (n, 1, seeds))
    y = 1.0 + shared + sps.t.rvs(3, size=(n, len(variants), seeds), random_state=rng) * 0.03  # n x variant x seed
    loo = np.swapaxes(y[:, [0]] - y[:, 2:2 + k], 1, 2)  # n x seed x augmentation: base - (base-a)
    add = np.swapaxes(y[:, 2 + k:] - y[:, [1]], 1, 2)  # (+a) - none
    codes = {LEAVE_ONE_OUT: inf.decide_arrays(loo, a_kind, 0.03)["code"],
             ADD_ONE_IN: inf.decide_arrays(add, a_kind, 0.03)["code"],
             "interaction": inf.decide_arrays(loo - add, a_contrast, 0.03)["code"]}
    false = np.any([np.isin(c, (1, 2)).any(axis=1) for c in codes.values()], axis=0)
    assert false.mean() <= mc_upper(0.05, n)
    for i in [*range(3), *np.flatnonzero(false)[:3]]:  # the tables' verdicts are the arrays', claims included
        runs = pd.DataFrame({"variant": np.repeat(variants, seeds), "seed": np.tile(np.arange(seeds), len(variants)),
                             "best_val_loss": y[i].ravel()})
        paired = inf.ablation_effects(runs, comps, margin=0.03, alpha=a_paired)
        paired = paired.set_index(["comparison", "augmentation"])
        contrasts = interactions(runs, comps, 0.03, a_contrast).set_index("augmentation")
        for kind in (LEAVE_ONE_OUT, ADD_ONE_IN):
            assert (inf.core.codes_of(paired.loc[kind].loc[AUGS, "verdict"]) == codes[kind][i]).all(), (i, kind)
        assert (inf.core.codes_of(contrasts.loc[AUGS, "verdict"]) == codes["interaction"][i]).all(), i


# ------------------------------------------------------------------- depth as a factor of the plan


def simulate_joint(rng: np.random.Generator, *, planted=(0.0, 0.0, 0.0, 0.0), repeats=4, blocks=2,
                   noise_sd=0.02, seed_slope_sd=0.01, seed_sd=0.05, depth_step=0.1, as_arrays=False) -> pd.DataFrame:
    """A sweep on the 16-run resolution V plan of four switches and depth (the default's design): depth a
    two-level factor of the plan, not crossed. Loss = depth step + seed intercept + switches @ (planted +
    per-seed slopes) + right-skewed noise (centred exponential) whose scale grows with depth; no interaction of
    any kind, so every helps/hurts in any verdict table is false."""
    runs = two_level_design([*AUGS, "depth"], 16).matrix.astype(float)
    P, dlev = runs[:, :4], runs[:, 4]
    n_rep = blocks * repeats
    slopes = rng.normal(0, seed_slope_sd, (n_rep, 4))
    intercept = rng.normal(0, seed_sd, (n_rep, 1))
    noise = (rng.exponential(1.0, (n_rep, 16)) - 1.0) * noise_sd * (0.8 + 0.4 * dlev)
    Y = 0.4 + depth_step * dlev + P @ np.asarray(planted) + intercept + slopes @ P.T + noise
    D = np.where(dlev > 0, 3, 2)
    return (Y, P, D) if as_arrays else sweep_table(Y, P, D, AUGS, repeats)


def joint_sweeps(rng: np.random.Generator, n: int, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n` sweeps of `simulate_joint` at once: Y (n x replicates x 16 points), the switches and the depths."""
    sims = [simulate_joint(rng, as_arrays=True, **kwargs) for _ in range(n)]
    return np.stack([y for y, _, _ in sims]), sims[0][1], sims[0][2]


def test_aa_whole_reports_when_depth_is_a_factor_of_the_plan():
    # Every verdict table of the report (effects, augmentation x depth, augmentation pairs, conditional
    # effects) at both looks of the 2-block cap: at most 5% of null reports with any false verdict. 2,000
    # sweeps through the vectorised rule, which is `decide_sweep` sweep for sweep (checked on a sample).
    n, rng = 2000, np.random.default_rng(2424)
    Y, P, D = joint_sweeps(rng, n)
    d = TableRule(P, D, repeats=4, looks=2, margin=0.02)
    assert claims(d.run(Y), ("effects", "depth", "pairs", "conditional")).mean() <= mc_upper(0.05, n)
    assert_driver_is_the_table_path(d, Y, P, D, margin=0.02, looks=2)
    # Resolution V: every pair is estimable, but aliased with a three-factor interaction, disclosed beside the
    # row, and withheld by default (as is every augmentation x depth row).
    table = sweep_table(Y[0], P, D, AUGS, 4)
    for look in (1, 2):
        v = inf.decide_sweep(table[table["block"] < look], AUGS, inf.VerdictRule(margin=0.02, max_looks=2),
                             points=16, finished=range(look))
        assert v.pairs is not None and len(v.pairs) == 6
        assert v.interactions is not None and v.interactions["aliases"].ne("").all()
        assert v.pairs["aliases"].ne("").all() and v.pairs["verdict"].eq("undecided").all()


def test_power_when_depth_is_a_factor_of_the_plan():
    # flip +0.2 (mirrored digits), warp -0.05 (a small shift), contrast 0: decided right in most sweeps (the
    # verdicts after both blocks; 1,000 sweeps through the vectorised rule).
    n, rng = 1000, np.random.default_rng(2425)
    Y, P, D = joint_sweeps(rng, n, planted=(0.2, 0.0, 0.0, -0.05))
    d = TableRule(P, D, repeats=4, looks=2, margin=0.02)
    eff = d.look(Y, 2)["effects"]
    assert ((eff[:, 0] == 2) & (eff[:, 3] == 1)).mean() >= 0.8
    assert_driver_is_the_table_path(d, Y, P, D, margin=0.02, looks=2, first=2)


def test_depth_contrasts_aliased_in_a_resolution_iv_plan_are_not_tested():
    # Three switches and depth in 8 runs: a x depth is the column of the other two switches' interaction.
    plan = two_level_design(["flip", "contrast", "rotation", "depth"], 8)
    assert plan.resolution == 4
    M = plan.matrix
    rng = np.random.default_rng(5)
    table = pd.DataFrame({
        "trial": np.tile(np.arange(8), 4), "block": 0, "repeat": np.repeat(np.arange(4), 8),
        "depth": np.tile(np.where(M[:, 3], 2, 1), 4),
        **{f"aug_{a}": np.tile(M[:, j], 4) for j, a in enumerate(["flip", "contrast", "rotation"])},
        "best_val_loss": rng.normal(0.5, 0.01, 32)})
    augs = ["flip", "contrast", "rotation"]
    assert frames.separable_pairs(table, augs) == []
    inter = inf.interaction_contrast(table, [(a, "depth") for a in augs], augs, inf.VerdictRule(margin=0.02))
    assert inter["note"].str.startswith("aliased with").all() and inter["effect"].isna().all()
