"""Whole reports of the default's design under the graph of verdict tables: A/A, power and decisiveness.

Sweeps of the resolution V half fraction (four switches, depth as a factor, R = 4, a cap of 2 blocks, `stop:
decided`) are simulated by `tests/resv_sweeps.py` (independent of the statistics) and decided by
`tests/sweep_driver.py`, which calls production's array functions, the ones `inference.decide_sweep` and
`report.configurations` call (checked equal on the stores' tables below). A report is false when any row of
any table (effects, augmentation x depth, augmentation pairs, conditional effects, configurations against
none) says `helps` with a truth >= 0, `hurts` with a truth <= 0, or `negligible` with |truth| >= the margin,
at any look the stopping rule took. Monte-Carlo error: at N = 2,000 sweeps, the standard error of a rate near
5% is 0.49 points; the bound is the 99% one-sided upper limit around 5% (6.1%).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from augsweep import inference as inf
from augsweep.experiment import design as design_mod
from augsweep.inference import fits
from augsweep.report.configurations import configurations
from tests import resv_sweeps as gen
from tests.sweep_driver import Driver

N = 2000
S, DEPTH = gen.design()


def mc_upper(p: float, n: int) -> float:
    return p + sps.norm.ppf(0.99) * math.sqrt(p * (1 - p) / n)


def false_reports(o: dict, d: Driver, truth: dict, margin: float) -> np.ndarray:
    """Per sweep: any row of any table with a false verdict at a look the stopping rule took."""
    bad = np.zeros(len(o["taken"]), dtype=bool)
    for look, codes in enumerate(o["looks"], start=1):
        live = o["taken"] >= look
        for t in ("effects", "depth", "pairs", "configurations"):
            if t in codes:
                row_truth = truth[t][d.conf_cols] if t == "configurations" else truth[t]
                bad |= live & gen.false_rows(codes[t], row_truth, margin).any(axis=1)
        if "conditional" in codes:  # no planted interaction of two augmentations: every claim is false
            bad |= live & np.isin(codes["conditional"], (1, 2)).any(axis=1)
    return bad


CONDITIONS = {
    # id: (generator arguments, margin, assume_no_higher_interactions)
    "nominal, sd 0.02, margin 0.05": ({"sd": 0.02}, 0.05, False),
    "nominal, sd 0.02, margin 0.02": ({"sd": 0.02}, 0.02, False),
    "nominal, sd 0.008, margin 0.02": ({"sd": 0.008}, 0.02, False),
    "skewed seed effect, sd 0.02, margin 0.02": ({"sd": 0.02, "skew": (1, 0.1, 0.09, -0.01)}, 0.02, False),
    "skewed seed effect, sd 0.02, margin 0.05": ({"sd": 0.02, "skew": (1, 0.1, 0.09, -0.01)}, 0.05, False),
    "skewed seed effect, sd 0.008, margin 0.05": ({"sd": 0.008, "skew": (1, 0.1, 0.09, -0.01)}, 0.05, False),
    "ICC 0.2, every table tested, margin 0.02": ({"sd": 0.02, "icc": 0.2}, 0.02, True),
    "ICC 0.2, every table tested, sd 0.008": ({"sd": 0.008, "icc": 0.2}, 0.02, True),
    "ICC 0.5, every table tested, margin 0.02": ({"sd": 0.02, "icc": 0.5}, 0.02, True),
    "ICC 0.5, every table tested, sd 0.008": ({"sd": 0.008, "icc": 0.5}, 0.02, True),
    "ICC 0.5, default tables, margin 0.05": ({"sd": 0.02, "icc": 0.5}, 0.05, False),
    "three-way flip x contrast x rotation 0.0125, margin 0.02": ({"sd": 0.02, "three_way": 0.0125}, 0.02, False),
    "three-way 0.0125, sd 0.008, margin 0.02": ({"sd": 0.008, "three_way": 0.0125}, 0.02, False),
    "three-way flip x contrast x depth 0.0125": ({"sd": 0.008, "three_way": 0.0125, "three": (0, 1, 4)}, 0.02,
                                                 False),
}


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_aa_every_table_of_the_default_design(condition):
    kwargs, margin, assume = CONDITIONS[condition]
    rng = np.random.default_rng(list(CONDITIONS).index(condition) + 700)
    d = Driver(S, DEPTH, repeats=4, looks=2, margin=margin, assume_no_higher=assume)
    o = d.run(gen.sweeps(rng, N, **kwargs))
    truth = gen.truths(three_way=kwargs.get("three_way", 0.0), three=kwargs.get("three", (0, 1, 2)))
    rate = false_reports(o, d, truth, margin).mean()
    assert rate <= mc_upper(0.05, N), f"{condition}: {rate:.2%} of null reports carry a false verdict"
    if assume:  # the shift term is what protects these tables: every one of them is tested here
        assert "depth" in o["final"] and d.depth_free.all() and d.pair_free.all()


def test_the_skew_no_check_can_see_is_stated_not_hidden():
    # +0.09 on 10% of seeds, -0.01 on the rest (mean 0), sd 0.008, margin 0.02: 43% of sweeps of 8 seeds never
    # draw the rare seed, and their data are a clean small benefit; no check on the data can tell. Where the
    # rare seed was drawn, the guard withholds every verdict it contradicts. (Measured rate: docs/method.md.)
    rng = np.random.default_rng(9)
    d = Driver(S, DEPTH, repeats=4, looks=2, margin=0.02)
    Y = gen.sweeps(rng, N, sd=0.008, skew=(1, 0.1, 0.09, -0.01))
    o = d.run(Y)
    B = fits.fit_replicates(Y, d.X, d.base)[0][..., 2]
    drawn = (B > 0.05).any(axis=1)
    contrast = o["final"]["effects"][:, 1]
    assert not np.isin(contrast[drawn], (1, 3)).any()  # never helps/negligible beside a rare high seed
    flagged = inf.core.rare_outcomes(B[:, :, None])[:, 0] == 1
    once, twice = ((B > 0.05).sum(axis=1) == k for k in (1, 2))
    assert flagged[once].mean() > 0.9
    assert flagged[twice].mean() > 0.9  # two rare seeds among 8 do not hide each other


@pytest.mark.parametrize("sd", [0.008, 0.02])
def test_power_at_plus_minus_0_05(sd):
    rng = np.random.default_rng(11)
    d = Driver(S, DEPTH, repeats=4, looks=2, margin=0.05)
    final = d.run(gen.sweeps(rng, N, sd=sd, effects=(0.05, 0.0, 0.0, -0.05)))["final"]["effects"]
    power = float(((final[:, 0] == 2) & (final[:, 3] == 1)).mean())
    assert power >= 0.9, f"power {power:.3f}"


def test_decisiveness_at_the_defaults_setting():
    # sd 0.02, margin 0.05, planted -0.05/+0.03/0/+0.01: all four verdicts right in >= 65% of sweeps (the tool's
    # meaning of the margin: |truth| below it is right when negligible or of the right sign). Was 41% with the
    # tables splitting alpha by rows.
    rng = np.random.default_rng(12)
    d = Driver(S, DEPTH, repeats=4, looks=2, margin=0.05)
    o = d.run(gen.sweeps(rng, N, sd=0.02, effects=(-0.05, 0.03, 0.0, 0.01)))
    c = o["final"]["effects"]
    right = (c[:, 0] == 1) & np.isin(c[:, 1], (2, 3)) & (c[:, 2] == 3) & np.isin(c[:, 3], (2, 3))
    assert right.mean() >= 0.65, f"all four right in {right.mean():.1%}"
    wrong_sign = (c[:, 0] == 2) | (c[:, 1] == 1) | (c[:, 3] == 1)
    assert not wrong_sign.any()


def test_first_look_of_the_defaults_cap_spends_nothing_and_the_levels_sum_to_alpha():
    levels = inf.plan_levels(0.05, 2, seeds_per_block=4, rows=4)
    assert levels == (0.0, 0.05)
    assert inf.plan_levels(0.05, 2, seeds_per_block=8, rows=4)[0] > 0  # 8 seeds can decide at look 1
    extended = inf.plan_levels(0.05, 4, planned_looks=2, seeds_per_block=4, rows=4)
    assert sum(extended) == pytest.approx(0.05) and extended[0] == levels[0]
    assert sum(inf.plan_levels(0.05, 4, seeds_per_block=4, rows=4)) == pytest.approx(0.05)


def test_an_extension_continues_the_plan_at_the_same_any_look_error():
    # A sweep planned for 2 blocks, extended to 4 (`--trials`): false claims at any look taken stay <= 5%.
    rng = np.random.default_rng(13)
    Y = gen.sweeps(rng, N, sd=0.02, blocks=4)
    d = Driver(S, DEPTH, repeats=4, looks=4, margin=0.02, planned_looks=2)
    o = d.run(Y)
    rate = false_reports(o, d, gen.truths(), 0.02).mean()
    assert rate <= mc_upper(0.05, N)


def test_gate_passes_only_from_superiority_verdicts():
    rows = {"effects": 4, "depth": 0, "pairs": 6, "configurations": 1}
    none = inf.gate_levels(0.05, rows, 0.0)
    assert none["effects"] == pytest.approx(0.8 * 0.05)
    assert none["pairs"] + none["configurations"] == pytest.approx(0.01, rel=0.01)
    every = inf.gate_levels(0.05, rows, 1.0)
    assert every["effects"] == none["effects"] and every["pairs"] + every["configurations"] == pytest.approx(
        0.05, rel=0.01)
    assert inf.gate_levels(0.05, {"effects": 4, "depth": 0, "pairs": 0, "configurations": 0})["effects"] == 0.05


def test_satterthwaite_df_of_the_shift_matches_its_sampling_distribution():
    # tau2 = (ms_b - ms_w) / n0 of a difference of mean squares: a scaled chi-square with Satterthwaite's df
    # has variance 2 E[tau2]^2 / df. Simulated one-way layouts (2 blocks x 4 replicates x 10 residual contrasts)
    # with a shift of ICC 0.5: the df the function returns, at the expected mean squares, gives the variance
    # the simulation shows, and is far below the between-blocks df it replaced.
    rng = np.random.default_rng(14)
    n, G, R, c = 20000, 2, 4, 10
    tau2, s2 = 1.0, 1.0
    E = rng.normal(0, math.sqrt(tau2), (n, G, 1, c)) + rng.normal(0, math.sqrt(s2), (n, G, R, c))
    est, df = fits.shared_shift(E.reshape(n, G * R, c), np.repeat(np.arange(G), R), c)
    ms_b, ms_w = s2 + R * tau2, s2
    df_b, df_w = (G - 1) * c, (G * R - G) * c
    df_theory = (ms_b - ms_w) ** 2 / (ms_b**2 / df_b + ms_w**2 / df_w)
    raw_var = 2 * (ms_b**2 / df_b + ms_w**2 / df_w) / R**2  # the untruncated estimate's exact variance
    assert 2 * tau2**2 / df_theory == pytest.approx(raw_var)
    assert est.var() == pytest.approx(raw_var, rel=0.15)  # truncation at 0 is rare at this ICC
    assert np.median(df) == pytest.approx(df_theory, rel=0.3) and np.median(df) < 0.8 * df_b


def _table(Y: np.ndarray) -> pd.DataFrame:
    reps = Y.shape[0]
    return pd.DataFrame({
        "trial": np.repeat(np.arange(reps) // 4, 16) * 16 + np.tile(np.arange(16), reps),
        "block": np.repeat(np.arange(reps) // 4, 16), "repeat": np.repeat(np.arange(reps) % 4, 16),
        "depth": np.tile(DEPTH, reps), "best_val_loss": Y.ravel(),
        **{f"aug_{a}": np.tile(S[:, j].astype(bool), reps) for j, a in enumerate(gen.AUGS)}})


@pytest.mark.parametrize("assume", [False, True])
def test_driver_equals_the_table_path(assume):
    # decide_sweep + configurations on the stores' tables give the driver's codes, table by table, per look.
    rng = np.random.default_rng(15)
    Y = np.concatenate([gen.sweeps(rng, 3, sd=0.008, effects=(-0.05, 0.03, 0.0, 0.01), icc=0.3),
                        gen.sweeps(rng, 2, sd=0.008, effects=(0.05, 0.0, 0.0, -0.05), three_way=0.02)])
    d = Driver(S, DEPTH, repeats=4, looks=2, margin=0.02, assume_no_higher=assume)
    rule = inf.VerdictRule(margin=0.02, max_looks=2, seeds_per_block=4, assume_no_higher=assume)
    for look in (1, 2):
        o = d.look(Y[:, :4 * look], look)
        for i in range(len(Y)):
            table = _table(Y[i, :4 * look])
            v = inf.decide_sweep(table, gen.AUGS, rule, points=16, finished=range(look))
            eff = inf.core.codes_of(v.effects.set_index("augmentation").loc[gen.AUGS, "verdict"])
            assert (eff == o["effects"][i]).all(), (i, look)
            inter = v.interactions.set_index("term").loc[[f"{a} x depth" for a in gen.AUGS], "verdict"]
            assert (inf.core.codes_of(inter) == o["depth"][i]).all(), (i, look)
            pairs = v.pairs.set_index("term").loc[[f"{gen.AUGS[a]} x {gen.AUGS[b]}" for a, b in d.pairs], "verdict"]
            assert (inf.core.codes_of(pairs) == o["pairs"][i]).all(), (i, look)
            assert v.levels["configurations"] == pytest.approx(o["levels"]["configurations"][i])
            conf = configurations(v.table, gen.AUGS, margin=0.02, alpha_look=v.levels["configurations"],
                                  shift=v.shift)
            names = [f"d{DEPTH[j]} " + ("+".join(a for a, on in zip(gen.AUGS, S[j]) if on)) for j in d.conf_cols]
            got = inf.core.codes_of(conf.set_index("configuration").loc[names, "verdict"])
            assert (got == o["configurations"][i]).all(), (i, look)
            assert v.should_stop(look, 2) == bool(inf.should_stop(o["decided"][i], look, 2))


def test_aliases_from_the_generator_are_the_ones_the_report_reads_from_the_data():
    plan = design_mod.two_level_design([*gen.AUGS, "depth"], 16)
    words = design_mod.aliases(plan)
    table = _table(gen.sweeps(np.random.default_rng(16), 1, sd=0.02)[0])
    from_data = inf.design_aliases(table, gen.AUGS)
    assert words["flip x depth"] == ["contrast x rotation x warp"] == from_data["flip x depth"]
    assert words["flip x contrast"] == ["rotation x warp x depth"] == from_data["flip x contrast"]
    full = design_mod.two_level_design(gen.AUGS, 16)
    assert not any(design_mod.aliases(full).values())


def test_a_trials_extension_records_and_continues_the_first_plan():
    from augsweep import load_experiment
    from augsweep.runs.blocks import BlockPlanner

    exp = load_experiment("experiments/default.yaml")
    first = BlockPlanner(exp, 32, echo=lambda _: None)
    recorded = first.describe()
    assert recorded["planned_blocks"] == recorded["max_blocks"] == 2
    extended = BlockPlanner(exp, 64, echo=lambda _: None)
    extended.adopt_plan(recorded)
    rule = inf.VerdictRule.for_sweep(exp, extended.describe())
    assert (rule.max_looks, rule.planned_looks, rule.primary_rows) == (4, 2, 4)
    assert [rule.alpha_at(look) for look in range(1, 5)] == list(
        inf.plan_levels(0.05, 4, planned_looks=2, seeds_per_block=exp.repeats, rows=4))
    assert not rule.assume_no_higher


def test_rare_outcome_guard_fires_at_its_level_under_normal_seeds_and_keeps_the_outliers_direction():
    rng = np.random.default_rng(17)
    for n in (5, 8, 16):
        flagged = inf.core.rare_outcomes(rng.normal(0, 1, (50_000, n, 1)))[:, 0] != 0
        assert flagged.mean() <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / 50_000), n  # Bonferroni over the seeds
    # a diverged training in one of 8 seeds: its row keeps `hurts` (the rare outcome's direction), loses the rest
    B = np.array([[0.011, 0.009, 0.010, 0.012, 0.008, 0.010, 0.011, 2.0]]).T
    assert inf.core.rare_outcomes(B)[0] == 1
    two = np.array([[0.011, 0.009, 0.010, 0.012, 0.008, 0.010, 2.1, 2.0]]).T  # two diverged among 8
    assert inf.core.rare_outcomes(B)[0] == 1 and inf.core.rare_outcomes(two)[0] == 1
    tight = np.array([[0.011, 0.009, 0.010, 0.012, 0.008, 0.010, 0.011, 0.0105]]).T
    assert inf.decide_arrays(tight, 0.05, 0.02)["code"][0] == 3
    assert inf.decide_arrays(np.vstack([tight[:7], [[0.5]]]), 0.05, 0.02)["code"][0] == 0
    assert inf.decide_arrays(np.full((8, 1), 0.3) + np.r_[np.linspace(-0.01, 0.01, 7), 3.0][:, None], 0.05,
                             0.02)["code"][0] in (0, 2)
