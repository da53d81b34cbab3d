"""Verdicts off the nominal model: whole reports under A/A for the awkward sweeps real trainings produce.

The sweeps come from `tests/offnominal.py`, simulated in bulk and independently of the statistics; they go
through the production pipeline: `inference.fits.replicate_design` / `fit_replicates` / `switch_shift` /
`decide_arrays` for 3,000 sweeps per condition (the vectorised path), checked equal to the table path the
report and the stopping rule use (`inference.decide_sweep` on the stores' tables) on a sample of them.
A report counts as false when any verdict on a null augmentation says `helps` or `hurts` at any look the
stopping rule takes (the first claim is taken). The bound is the 99% one-sided Monte-Carlo upper limit
around 5% (5.9% at 3,000 sweeps).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from augsweep import inference as inf
from augsweep.experiment.design import plan_for
from augsweep.experiment.seeding import STRIDE, ablation_seeds, repeat_seeds, sweep_seeds
from augsweep.inference import fits, power
from augsweep.report.sweep_analysis import failed_points, finished_blocks
from tests import offnominal as gen
from tests.sweep_driver import Driver

N = 3000
R, LOOKS, MARGIN = 4, 2, 0.02
X, BASE = gen.design_matrix()


def mc_upper(p: float, n: int) -> float:
    return p + sps.norm.ppf(0.99) * math.sqrt(p * (1 - p) / n)


PAIRS = [(i, j) for i in range(len(gen.AUGS)) for j in range(i + 1, len(gen.AUGS))]


def sequential_all(Y: np.ndarray, *, alpha: float = 0.05, looks: int = LOOKS) -> dict:
    """The stopping rule and the report's verdicts, vectorised (`tests/sweep_driver.py`: effects, aug x aug
    contrasts, conditional effects of decided pairs and configurations against none, in the graph of tables
    `decide_sweep` uses). Per sweep: which rows were ever claimed (helps/hurts) at a look it took, the codes
    where it stopped, looks taken, and `decided` per look."""
    S = gen.design()[0]
    d = Driver(S, np.full(len(S), 2), repeats=R, looks=looks, margin=MARGIN, alpha=alpha, design=(X, BASE),
               diverged_value=gen.CHANCE)
    o = d.run(Y)
    return {"seen": o["claimed"]["effects"], "seen_pairs": o["claimed"]["pairs"],
            "seen_cond": o["claimed"]["conditional"], "seen_configurations": o["claimed"].get("configurations"),
            "final": o["final"]["effects"], "final_pairs": o["final"]["pairs"], "final_cond": o["final"]["conditional"],
            "seen_divergence": o["claimed"].get("divergence"), "final_divergence": o["final"].get("divergence"),
            "taken": o["taken"], "decided": [lk["decided"] for lk in o["looks"]]}


def sequential_codes(Y: np.ndarray, *, alpha: float = 0.05, looks: int = LOOKS):
    """Per simulated sweep: whether a marginal row was ever claimed, its codes where it stopped, looks taken."""
    o = sequential_all(Y, alpha=alpha, looks=looks)
    return o["seen"], o["final"], o["taken"]


CONDITIONS = {
    # id: (generator arguments, the augmentations with a true effect)
    "nominal-sd0.008": ({}, ()),
    "nominal-sd0.02": ({"sd": 0.02}, ()),
    "dose-response of rotation, +-0.05 over its range": ({"dose": {"rotation": 0.1}}, ()),
    "dose-response, sd0.02": ({"dose": {"rotation": 0.1}, "sd": 0.02}, ()),
    "10% failed + interactions +-0.1": ({"fail": 0.1, "interaction": 0.1}, ()),
    "10% failed + interactions, sd0.02": ({"fail": 0.1, "interaction": 0.1, "sd": 0.02}, ()),
    "2 points fail in every block + interactions": ({"always_fail": (3, 7), "interaction": 0.1}, ()),
    "3% diverge (scored)": ({"diverge": 0.03}, ()),
    "3% diverge, sd0.02": ({"diverge": 0.03, "sd": 0.02}, ()),
    "rotation diverges 10% more (a true harm)": ({"diverge_with": {"rotation": 0.1}}, ("rotation",)),
    "rotation diverges more, sd0.02": ({"diverge_with": {"rotation": 0.1}, "sd": 0.02}, ("rotation",)),
    "skewed noise": ({"noise": "exp"}, ()),
    "skewed noise, sd0.02": ({"noise": "exp", "sd": 0.02}, ()),
    "contrast's trainings skewed (same mean)": ({"skewed_aug": "contrast"}, ()),
    "contrast's trainings skewed, sd0.02": ({"skewed_aug": "contrast", "sd": 0.02}, ()),
    "rare blow-ups (5%, mean 0)": ({"blowup": 0.05}, ()),
    "rare blow-ups, sd0.02": ({"blowup": 0.05, "sd": 0.02}, ()),
    "repeats of a trial share a shift (ICC 0.5)": ({"trial_icc": 0.5}, ()),
    "repeats share a shift (ICC 0.5), sd0.02": ({"trial_icc": 0.5, "sd": 0.02}, ()),
}


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_aa_whole_reports_off_the_nominal_model(condition):
    kwargs, true = CONDITIONS[condition]
    rng = np.random.default_rng(list(CONDITIONS).index(condition) + 100)
    o = sequential_all(gen.sweeps(rng, N, **kwargs))
    null = [a not in true for a in gen.AUGS]
    false = o["seen"][:, null].any(axis=1)
    if not kwargs.get("interaction"):  # no planted interaction: every aug x aug claim (and what follows) is false
        false |= o["seen_pairs"].any(axis=1) | o["seen_cond"].any(axis=1)
    if not (true or kwargs.get("interaction") or kwargs.get("dose") or kwargs.get("conditional")):
        false |= o["seen_configurations"].any(axis=1)  # every configuration equals none: any claim is false
    if o["seen_divergence"] is not None and not kwargs.get("diverge_with"):  # divergence follows no augmentation
        false |= o["seen_divergence"].any(axis=1)
    false = false.mean()
    assert false <= mc_upper(0.05, N), f"{condition}: {false:.3%} of null reports carry a false verdict"


@pytest.mark.parametrize("sd", [0.008, 0.02])
@pytest.mark.parametrize("extra", [{}, {"dose": {"rotation": 0.1}, "interaction": 0.03}],
                         ids=["clean", "dose+interactions"])
def test_power_at_the_default_size(sd, extra):
    # +-0.05 planted on two augmentations: both decided with the right sign within the cap of 2 blocks.
    _, final, _ = sequential_codes(gen.sweeps(np.random.default_rng(7), N, sd=sd, effects=[0.05, 0, 0, -0.05],
                                              **extra))
    power = float(((final[:, 0] == 2) & (final[:, 3] == 1)).mean())
    assert power >= 0.8, f"power {power:.3f}"


def test_scored_divergences_cost_power_but_never_flip_a_sign():
    # A diverged training scored at ln K is a large outlier: with 3% of trainings diverging, the per-seed
    # effects spread and most +-0.05 effects stay undecided within two blocks (the honest answer: rare
    # catastrophes make a mean uncertain), but what is decided has the right sign.
    _, final, _ = sequential_codes(gen.sweeps(np.random.default_rng(7), N, effects=[0.05, 0, 0, -0.05],
                                              diverge=0.03))
    assert not (final[:, 0] == 1).any() and not (final[:, 3] == 2).any()


def test_a_divergence_that_follows_an_augmentation_is_its_harm():
    # Scored rather than dropped, a divergence the augmentation causes is part of its effect: found as harm.
    o = sequential_all(gen.sweeps(np.random.default_rng(8), N, diverge_with={"rotation": 0.2}))
    j = gen.AUGS.index("rotation")
    rotation = o["final"][:, j]
    assert (rotation == 2).mean() >= 0.35 and not (rotation == 1).any()
    # and its own row: rotation's trainings diverge more often (exact binomial), never the others'
    div = o["final_divergence"]
    assert (div[:, j] == 2).mean() >= 0.6  # 71% at seed 8 (0.2 more divergence, 16 seeds x 8 trainings on)
    assert np.isin(np.delete(div, j, axis=1), (1, 2)).mean() <= 0.05


def test_dose_response_does_not_leak_but_did_with_unbalanced_magnitudes():
    # The test can fail: the same dose-response with magnitudes drawn independently of the other switches
    # (what the design did before) and no magnitude terms in the fit leaks into the others' effects.
    rng = np.random.default_rng(9)
    S, pos, _ = gen.design()
    Y = gen.sweeps(rng, 1000, dose={"rotation": 0.1})
    seen, _, _ = sequential_codes(Y)
    assert seen.any(axis=1).mean() <= mc_upper(0.05, 1000)
    j = gen.AUGS.index("rotation")
    u = np.random.default_rng(0).random(16)  # one unbalanced draw of rotation's magnitudes, kept per block
    leak = S[:, j] * 0.1 * (u - 0.5) - S[:, j] * 0.1 * (pos[:, j] - 0.5)
    plain = X[:, :BASE]
    B = fits.fit_replicates(Y + leak, plain, BASE)[0][..., 1:5]
    other = [i for i in range(4) if i != j]
    assert np.abs(B[..., other].mean(axis=(0, 1))).max() > 0.003  # a systematic shift in another effect


def test_array_path_equals_the_reports_table_path():
    rng = np.random.default_rng(10)
    Y = gen.sweeps(rng, 12, sd=0.02, fail=0.1, interaction=0.05, dose={"rotation": 0.1}, trial_icc=0.3)
    seen, final, taken = sequential_codes(Y)
    for i in range(len(Y)):
        table, trials = gen.to_tables(Y[i], rng)
        for look in range(1, taken[i] + 1):
            v = inf.decide_sweep(table, gen.AUGS, inf.VerdictRule(margin=MARGIN, max_looks=LOOKS, seeds_per_block=R),
                                 points=16, finished=range(look))
        got = v.effects.set_index("augmentation").loc[gen.AUGS, "verdict"].tolist()
        assert got == list(inf.VERDICT_CODES[final[i]]), (i, got, final[i])


def _decided_by_the_tables(v) -> dict[str, bool]:
    """The rule read off the report's tables alone: an augmentation is decided by its verdict, or, when it has
    conditional rows (it is in a decided interaction), when every one of them is decided."""
    out = {r.augmentation: r.verdict in inf.DECIDED for r in v.effects.itertuples()}
    if v.conditional is not None:
        for aug, g in v.conditional.groupby("augmentation"):
            out[aug] = bool(g["verdict"].isin(list(inf.DECIDED)).all())
    return out


def test_stop_decision_of_the_array_core_is_the_reports_at_every_look():
    # The decision itself, not only the codes: per augmentation and for the sweep, at every look (stopped or
    # not), the vectorised core's `decided` / `should_stop` equal what `decide_sweep` on the stores' table says
    # (`SweepVerdicts.decided`, `should_stop`) and what its tables say. The sample mixes decided interactions
    # (conditional effects), planted effects and nulls, so both branches of the rule are taken.
    rng = np.random.default_rng(23)
    Y = np.concatenate([gen.sweeps(rng, 6, sd=0.008, conditional=("warp", "contrast", -0.1)),
                        gen.sweeps(rng, 5, sd=0.008, effects=[0.05, 0, 0, -0.05]),
                        gen.sweeps(rng, 5, sd=0.02, fail=0.1, interaction=0.05, trial_icc=0.3)])
    o = sequential_all(Y)
    rule = inf.VerdictRule(margin=MARGIN, max_looks=LOOKS, seeds_per_block=R)
    seen = {"interaction": 0, "all decided": 0, "open": 0}
    for i in range(len(Y)):
        table, _ = gen.to_tables(Y[i], rng)
        for look in range(1, LOOKS + 1):
            v = inf.decide_sweep(table, gen.AUGS, rule, points=16, finished=range(look))
            core = dict(zip(gen.AUGS, o["decided"][look - 1][i].tolist()))
            assert v.decided() == core == _decided_by_the_tables(v), (i, look)
            assert v.should_stop(look, LOOKS) == bool(inf.should_stop(o["decided"][look - 1][i], look, LOOKS))
            seen["interaction"] += v.conditional is not None and len(v.conditional) > 0
            seen["all decided" if all(core.values()) else "open"] += 1
    assert all(seen.values()), seen


def test_live_reports_decide_on_finished_blocks_only():
    # A report made after every few trials while the sweep runs (until the stopping rule stops it): a partly
    # finished block never enters, so each live report is the report of the last finished block, and the
    # first claim taken is false no more often than the stopping rule's.
    rng = np.random.default_rng(11)
    n, claims = 60, 0
    Y = gen.sweeps(rng, n, sd=0.02)
    seen, _, taken = sequential_codes(Y)
    for i in range(n):
        total = len(gen.to_tables(Y[i], np.random.default_rng(i))[1])
        claimed = False
        for done in range(5, total + 5, 5):
            table, trials = gen.to_tables(Y[i], np.random.default_rng(i), done=done)
            finished = finished_blocks(trials)
            if not finished:
                continue
            if len(finished) > taken[i]:
                break  # the sweep stopped before this block
            v = inf.decide_sweep(table, gen.AUGS, inf.VerdictRule(margin=MARGIN, max_looks=LOOKS, seeds_per_block=R),
                                 points=16, finished=finished)
            assert v.looks[0] == len(finished) and set(v.blocks_used) <= set(finished)
            claimed |= bool(v.effects["verdict"].isin(["helps", "hurts"]).any())
        assert not claimed or seen[i].any()  # never a claim the block-wise rule did not make
        claims += claimed
    assert claims / n <= mc_upper(0.05, n)


def test_failed_design_points_are_named_and_their_replicates_left_out():
    rng = np.random.default_rng(12)
    Y = gen.sweeps(rng, 1, always_fail=(5,))[0]
    table, trials = gen.to_tables(Y, rng)
    names = failed_points(trials)
    assert len(names) == 2 and all("design point 5" in n and "2 attempt(s)" in n for n in names)
    v = inf.decide_sweep(table, gen.AUGS, inf.VerdictRule(margin=MARGIN, max_looks=LOOKS), points=16, finished=[0, 1])
    assert v.blocks_used == () and (v.effects["verdict"] == "undecided").all()


def test_one_alpha_for_a_report_with_sweep_and_ablation():
    # Null sweep effects and a null ablation (leave-one-out, add-one-in, their interaction contrasts) in
    # one report, the ablation at its part of the configurations' node of the sweep's graph, as
    # report/analysis.py gives it (under the null no main effect passes alpha on): <= 5% of reports err.
    from augsweep.report.ablation_analysis import ADD_ONE_IN, LEAVE_ONE_OUT, interactions

    n, rng, seeds = 3000, np.random.default_rng(13), 5
    comps = pd.DataFrame(
        [{"augmentation": a, "comparison": LEAVE_ONE_OUT, "with_variant": "base", "without_variant": f"base-{a}"}
         for a in gen.AUGS]
        + [{"augmentation": a, "comparison": ADD_ONE_IN, "with_variant": f"+{a}", "without_variant": "none"}
           for a in gen.AUGS])
    node = inf.gate_levels(0.05, {"effects": 4, "depth": 0, "pairs": 6, "configurations": 1})["configurations"]
    a_configurations, a_ablation = inf.split_alpha(node, [1, len(comps) + len(gen.AUGS)])
    assert a_ablation < node < 0.05 * (1 - inf.PRIMARY_WEIGHT) + 1e-12
    a_paired, a_contrast = inf.split_alpha(a_ablation, [len(comps), len(gen.AUGS)])
    # The two parts are independent: the sweep's rate from N vectorised sweeps (every table, configurations at
    # their whole node: an upper bound), the ablation's from n reports through the array rule its tables call
    # (checked equal to `ablation_effects` / `interactions` on a sample, claims included).
    o = sequential_all(gen.sweeps(rng, N, sd=0.02))
    p_sweep = (o["seen"].any(axis=1) | o["seen_pairs"].any(axis=1) | o["seen_cond"].any(axis=1)
               | o["seen_configurations"].any(axis=1)).mean()
    variants = ["base", "none", *(f"base-{a}" for a in gen.AUGS), *(f"+{a}" for a in gen.AUGS)]
    y = 0.3 + rng.normal(0, 0.05, (n, 1, seeds)) + rng.normal(0, 0.02, (n, len(variants), seeds))
    codes = ablation_codes(y, len(gen.AUGS), a_paired, a_contrast)
    false = np.any([np.isin(c, (1, 2)).any(axis=1) for c in codes.values()], axis=0)
    for i in [*range(3), *np.flatnonzero(false)[:3]]:  # the report's tables decide as the arrays do
        runs = pd.DataFrame({"variant": np.repeat(variants, seeds), "seed": np.tile(np.arange(seeds), len(variants)),
                             "best_val_loss": y[i].ravel()})
        paired = inf.ablation_effects(runs, comps, MARGIN, a_paired).set_index(["comparison", "augmentation"])
        contrasts = interactions(runs, comps, MARGIN, a_contrast).set_index("augmentation")
        for kind in (LEAVE_ONE_OUT, ADD_ONE_IN):
            assert (inf.core.codes_of(paired.loc[kind].loc[gen.AUGS, "verdict"]) == codes[kind][i]).all(), (i, kind)
        assert (inf.core.codes_of(contrasts.loc[gen.AUGS, "verdict"]) == codes["interaction"][i]).all(), i
    p_report = 1 - (1 - p_sweep) * (1 - false.mean())
    assert p_report <= mc_upper(0.05, n), f"sweep {p_sweep:.3%}, ablation {false.mean():.3%}"


def ablation_codes(y: np.ndarray, k: int, a_paired: float, a_contrast: float) -> dict[str, np.ndarray]:
    """Verdict codes (sims x augmentations) of null ablation reports, y: sims x variants x seeds with the variants
    ordered base, none, base-a..., +a...: leave-one-out and add-one-in rows each at their Šidák share of
    `a_paired` (as `ablation_effects` splits it), the interaction contrasts at `a_contrast`."""
    from augsweep.report.ablation_analysis import ADD_ONE_IN, LEAVE_ONE_OUT

    a_kind = 1.0 - (1.0 - a_paired) ** 0.5  # two kinds of k rows each
    loo = np.swapaxes(y[:, [0]] - y[:, 2:2 + k], 1, 2)  # sims x seeds x augmentations: base - (base-a)
    add = np.swapaxes(y[:, 2 + k:] - y[:, [1]], 1, 2)  # (+a) - none
    return {LEAVE_ONE_OUT: inf.decide_arrays(loo, a_kind, MARGIN)["code"],
            ADD_ONE_IN: inf.decide_arrays(add, a_kind, MARGIN)["code"],
            "interaction": inf.decide_arrays(loo - add, a_contrast, MARGIN)["code"]}


def _deterministic_outcome(config: int, seeds) -> float:
    """A training deterministic given its seeds: null configurations, noise keyed by (config, seeds)."""
    return 0.3 + np.random.default_rng([config, seeds.init, seeds.aug, seeds.order]).normal(0, 0.02)


@pytest.mark.parametrize("fresh", [True, False], ids=["ablation-seeds", "sweep-seeds"])
def test_ablation_of_the_best_trial_on_fresh_seeds(fresh):
    # `base: best` picks the sweep's best of 50 null configurations on seeds 0..3; the ablation retrains it
    # against no augmentation. On the sweep's own seeds the winner's luck replays (selection on noise); on
    # the ablation's seeds, which no sweep trial used, it does not.
    n, R_ab = 300, 4
    y = np.empty((n, 2, R_ab))  # sweep x (base, none) x seed
    for s in range(n):
        sweep_s = [repeat_seeds(s, r) for r in range(4)]
        best = min(range(1, 51), key=lambda c: np.mean([_deterministic_outcome(s * 100 + c, x) for x in sweep_s]))
        seeds = [ablation_seeds(s, r) for r in range(R_ab)] if fresh else sweep_s
        y[s] = [[_deterministic_outcome(s * 100 + c, x) for x in seeds] for c in (best, 0)]
    # The ablation's one paired row (base - none, t across the seeds at the whole alpha), the array rule
    # `ablation_effects` calls; the table path on a sample gives the same verdicts.
    codes = inf.decide_arrays((y[:, 0] - y[:, 1])[..., None], 0.05, 0.005)["code"][:, 0]
    comps = pd.DataFrame([{"augmentation": "best", "comparison": "add-one-in", "with_variant": "base",
                           "without_variant": "none"}])
    for s in [*range(5), *np.flatnonzero(np.isin(codes, (1, 2)))[:3]]:  # claims included
        runs = pd.DataFrame({"variant": np.repeat(["base", "none"], R_ab), "seed": np.tile(np.arange(R_ab), 2),
                             "best_val_loss": y[s].ravel()})
        assert inf.core.codes_of(inf.ablation_effects(runs, comps, 0.005)["verdict"])[0] == codes[s]
    rate = np.isin(codes, (1, 2)).mean()
    if fresh:
        assert rate <= mc_upper(0.05, n)
    else:
        assert rate > mc_upper(0.05, n)  # the check can fail: reusing the sweep's seeds claims the winner's luck


def test_seed_ranges_never_overlap():
    exp_seed = 0
    sweep_ = {tuple(vars(sweep_seeds(exp_seed, i)).values())[1:] for i in range(64)}
    retry = {tuple(vars(sweep_seeds(exp_seed, i, attempt=1)).values())[1:] for i in range(64)}
    ablate = {tuple(vars(ablation_seeds(exp_seed, r)).values())[1:] for r in range(16)}
    assert not (sweep_ & retry) and not (sweep_ & ablate) and not (retry & ablate)
    assert sweep_seeds(exp_seed, 5) == repeat_seeds(exp_seed, 5)  # old studies keep their seeds
    assert sweep_seeds(exp_seed, 5, attempt=1).repeat == 5  # a retry keeps its replicate slot
    with pytest.raises(ValueError):
        sweep_seeds(exp_seed, STRIDE)


# ------------------------------------------------------------ mutants the A/A and power tests would miss


def test_interval_level_look_and_df_exactly():
    # alpha_look, Šidák share, t with n - 1 df and the half-width, recomputed from first principles.
    rng = np.random.default_rng(14)
    seeds = pd.DataFrame([{"block": b, "repeat": r, "augmentation": a, "effect": rng.normal(0.01, 0.01),
                           "n_with": 8, "n_without": 8, "n_points": 16}
                          for b in range(2) for r in range(3) for a in gen.AUGS])
    fr = inf.summarize(seeds, gen.AUGS, inf.VerdictRule(margin=MARGIN, alpha=0.05, max_looks=3), 2)
    fr = fr.set_index("augmentation")
    z = sps.norm.isf(0.025)

    def spent(t):
        return 2 * sps.norm.sf(z / math.sqrt(t))

    a_look = spent(2 / 3) - spent(1 / 3)
    assert fr["alpha_look"].iloc[0] == pytest.approx(a_look, rel=1e-12)
    per = 1 - (1 - a_look) ** (1 / 4)
    for a in gen.AUGS:
        x = seeds.loc[seeds.augmentation == a, "effect"].to_numpy()
        se = x.std(ddof=1) / math.sqrt(6)
        half = sps.t.isf(per / 2, 5) * se
        assert fr.loc[a, "ci_low"] == pytest.approx(x.mean() - half, rel=1e-9)
        assert fr.loc[a, "ci_high"] == pytest.approx(x.mean() + half, rel=1e-9)
        assert fr.loc[a, "mde"] == pytest.approx((sps.t.isf(per / 2, 5) + sps.t.ppf(0.8, 5)) * se, rel=1e-9)


def test_blocks_to_decide_uses_the_family_size():
    row = {"n_seeds": 4, "sd_seeds": 0.02, "effect": 0.012}

    def projected(m):
        for extra in range(1, 101):
            n2 = 4 + 4 * extra
            a = inf.sidak_level(inf.plan_levels(0.05, max(2, 1 + extra), planned_looks=2, seeds_per_block=4)[extra], m)
            half = sps.t.isf(a / 2, n2 - 1) * 0.02 / math.sqrt(n2)
            if 0.012 - half > 0:
                return float(extra)
        return float("nan")

    for m in (1, 4):
        got = power.blocks_to_decide(False, row["n_seeds"], row["sd_seeds"], row["effect"], m,
                                     inf.VerdictRule(margin=0.005, alpha=0.05, max_looks=2), looks_done=1,
                                     seeds_per_block=4)
        assert got == projected(m)
    assert projected(1) != projected(4)


def test_blocks_to_decide_waits_for_a_look_that_can_decide():
    # Two seeds per block and four main effects: the plan skips the looks whose critical t would exceed 10, so
    # even an effect of 1000 standard deviations is decided no sooner than the first look that spends alpha.
    rule = inf.VerdictRule(margin=0.01, alpha=0.05, max_looks=4, seeds_per_block=2, primary_rows=4)
    levels = inf.plan_levels(0.05, 4, seeds_per_block=2, rows=4)
    first = next(i for i, a in enumerate(levels, start=1) if a > 0)
    assert first > 2
    got = power.blocks_to_decide(False, 2, 0.001, 1.0, 4, rule, looks_done=1, seeds_per_block=2)
    assert got == first - 1
    # the main effects' part of the graph projects at that part of the plan's level
    share = inf.VerdictRule(margin=0.01, alpha=0.05, max_looks=4, seeds_per_block=2, primary_rows=4, look_share=0.8)
    assert share.projected_level(first) == pytest.approx(0.8 * levels[first - 1])


def test_plan_for_halves_the_block_when_sequential():
    from augsweep.experiment.load import parse_search_space

    space = parse_search_space({"depth": 1, "augmentations": {
        "flip": {"mode": ["horizontal"]}, "contrast": {"factor": [0.1, 0.2]}, "brightness": {"factor": [0.1, 0.2]},
        "rotation": {"factor": [0.1, 0.2]}, "warp": {"kind": ["translation"], "factor": [0.05, 0.1]}}}, "inline")
    assert plan_for(space, 32).runs == 32 and plan_for(space, 32).full
    assert plan_for(space, 32, sequential=True).runs == 16


def test_shared_shift_recovers_a_planted_shift_and_ignores_fixed_lack_of_fit():
    rng = np.random.default_rng(15)
    Y = gen.sweeps(rng, 2000, trial_icc=0.5, sd=0.02)
    groups = np.repeat([0, 1], R)
    extra, df = fits.switch_shift(Y, X, BASE, 4, groups)
    weight = (fits.projector(X)[0][1:5] ** 2).sum(axis=-1)
    train_sd = 2.0 * math.sqrt(0.02**2 - 0.01**2)
    tau2 = 0.5 * train_sd**2
    # what the shift adds to the mean of two equal blocks' per-seed effects: half a block's
    assert extra.mean(axis=0) == pytest.approx(tau2 * weight / 2, rel=0.15)
    # Satterthwaite's df of a difference of mean squares: fewer than the between-blocks mean square's own 7
    # ((blocks - 1) x residual df of the 9-column fit), since the within part is subtracted
    assert np.median(df[:, 0]) < 7 and (df[extra[:, 0] > 0, 0] >= 1).all()
    # Interactions are fixed across blocks: with two blocks they do not pass for a shared shift.
    Y2 = gen.sweeps(np.random.default_rng(16), 2000, interaction=0.1)
    extra2, _ = fits.switch_shift(Y2, X, BASE, 4, groups)
    assert extra2.mean() < 0.2 * tau2 * weight.mean()


def _cond_col(a: str, b: str, other_on: bool) -> int:
    """Column of `a | b on/off` in the conditional arrays (`inference.COND_KINDS` per pair)."""
    i, j = gen.AUGS.index(a), gen.AUGS.index(b)
    p = PAIRS.index((min(i, j), max(i, j)))
    return 4 * p + (0 if i < j else 2) + (1 if other_on else 0)


@pytest.mark.parametrize("sd", [0.008, 0.02])
def test_a_planted_interaction_gets_conditional_effects(sd):
    # warp helps without contrast (-0.1) and does nothing with it. Power: the warp x contrast contrast and
    # warp's effect without contrast are decided within the cap; A/A: no claim on a quantity that is 0
    # (warp with contrast, contrast without warp, the other pairs, the marginal effects of flip and rotation).
    o = sequential_all(gen.sweeps(np.random.default_rng(21), N, sd=sd, conditional=("warp", "contrast", -0.1)))
    p = PAIRS.index(tuple(sorted((gen.AUGS.index("contrast"), gen.AUGS.index("warp")))))
    assert (o["final_pairs"][:, p] == 2).mean() >= 0.8  # +0.1 in 0/1 coding: the product term hurts
    assert (o["final_cond"][:, _cond_col("warp", "contrast", False)] == 1).mean() >= 0.8
    zero = [_cond_col("warp", "contrast", True), _cond_col("contrast", "warp", False)]
    others = [q for q in range(len(PAIRS)) if q != p]
    null_marg = [gen.AUGS.index(a) for a in gen.AUGS if a not in ("warp", "contrast")]
    false = (o["seen_cond"][:, zero].any(axis=1) | o["seen_pairs"][:, others].any(axis=1)
             | o["seen"][:, null_marg].any(axis=1)).mean()
    assert false <= mc_upper(0.05, N), f"{false:.3%} of reports carry a false claim"


def test_conditional_effects_on_the_reports_table_path():
    # The same planted interaction through `decide_sweep` on the stores' table: the report's conditional rows.
    rng = np.random.default_rng(22)
    Y = gen.sweeps(rng, 1, sd=0.008, conditional=("warp", "contrast", -0.1))
    table, _ = gen.to_tables(Y[0], rng)
    v = inf.decide_sweep(table, gen.AUGS, inf.VerdictRule(margin=MARGIN, max_looks=LOOKS), points=16, finished=[0, 1])
    assert v.pairs is not None and set(v.pairs["verdict"]) >= {"hurts"}
    c = v.conditional.set_index(["augmentation", "given"])
    assert c.loc[("warp", "contrast off"), "verdict"] == "helps"
    assert abs(c.loc[("warp", "contrast off"), "effect"] + 0.1) < 0.02
    assert c.loc[("warp", "contrast on"), "verdict"] in ("negligible", "undecided")
    assert v.decided()["warp"] == bool(c.loc["warp", "verdict"].isin(list(inf.DECIDED)).all())


def test_divergence_rows_of_the_array_core_are_the_reports():
    rng = np.random.default_rng(31)
    Y = gen.sweeps(rng, 8, diverge=0.03, diverge_with={"rotation": 0.15})
    S = gen.design()[0]
    d = Driver(S, np.full(len(S), 2), repeats=R, looks=LOOKS, margin=MARGIN, design=(X, BASE),
               diverged_value=gen.CHANCE)
    rule = inf.VerdictRule(margin=MARGIN, max_looks=LOOKS, seeds_per_block=R)
    for look in (1, 2):
        o = d.look(Y[:, :look * R], look)
        for i in range(len(Y)):
            table, _ = gen.to_tables(Y[i], np.random.default_rng(i))
            v = inf.decide_sweep(table, gen.AUGS, rule, points=16, finished=range(look))
            got = v.divergence.set_index("augmentation").loc[gen.AUGS, "verdict"] if v.divergence is not None \
                else pd.Series(["undecided"] * 4)
            assert (inf.core.codes_of(got) == o["divergence"][i]).all(), (i, look)
            assert v.levels["divergence"] == pytest.approx(o["levels"]["divergence"][i])
