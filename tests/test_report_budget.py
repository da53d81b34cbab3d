"""Effect vs epoch budget and the budget-bound wording, on simulated learning curves (pure, fast)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from augsweep import inference
from augsweep.report import budget

AUGS = ["flip", "contrast", "warp"]
EPOCHS = 40


def simulate(slow: dict[str, float] | None = None, shift: dict[str, float] | None = None, *, seeds: int = 4,
             sd: float = 0.004, seed: int = 0):
    """A 2^3 factorial, one block of `seeds` seeds: val_loss(t) = 0.3 + shift + exp(-t / tau), tau = 6 epochs
    plus `slow[a]` for each augmentation a that is on (slower convergence, same converged loss)."""
    rng = np.random.default_rng(seed)
    slow, shift = slow or {}, shift or {}
    t = np.arange(EPOCHS)
    curves, table = [], []
    for trial, bits in enumerate(itertools.product([False, True], repeat=len(AUGS))):
        on = dict(zip(AUGS, bits))
        tau = 6.0 + sum(slow.get(a, 0.0) for a in AUGS if on[a])
        level = 0.3 + sum(shift.get(a, 0.0) for a in AUGS if on[a])
        for r in range(seeds):
            noise = rng.normal(0, sd)
            v = level + np.exp(-t / tau) + noise + rng.normal(0, sd / 4, EPOCHS)
            curves.append(pd.DataFrame({"trial": trial, "repeat": 4 + r, "epoch": t, "val_loss": v}))
            table.append({"trial": trial, "block": 0, "repeat": r, "best_val_loss": float(v.min()), "depth": 2,
                          **{f"aug_{a}": on[a] for a in AUGS}})
    return pd.concat(curves, ignore_index=True), pd.DataFrame(table)


def analyse(curves, table):
    full = inference.effects(table, AUGS, inference.VerdictRule(margin=0.02))
    by, moving = budget.analyse_budget(curves, table, full, AUGS, EPOCHS, inference.VerdictRule(margin=0.02))
    return full, by, moving


def test_grid_has_four_budgets_ending_at_the_epochs_and_holds_three_quarters():
    for e in (8, 10, 40, 60, 200):
        g = budget.budget_grid(e)
        assert len(g) >= 4 and g[-1] == e and round(e * 0.75) in g and g == sorted(set(g))


def test_last_budget_reproduces_the_verdicts():
    curves, table = simulate(shift={"warp": -0.05})
    full, by, _ = analyse(curves, table)
    last = by[by["epochs"] == EPOCHS].set_index("augmentation")
    f = full.set_index("augmentation")
    for col in ("effect", "ci_low", "ci_high"):
        np.testing.assert_allclose(last.loc[AUGS, col], f.loc[AUGS, col])
    assert list(by.columns) == budget.BUDGET_COLUMNS and set(by["n_seeds"]) == {4}


def test_slower_convergence_gets_the_budget_wording():
    # warp slows convergence (tau 6 -> 20 epochs) and changes nothing once converged: it "hurts" at 40
    # epochs, but its effect is shrinking over the last quarter of the budget
    curves, table = simulate(slow={"warp": 14.0})
    full, by, moving = analyse(curves, table)
    row = full.set_index("augmentation").loc["warp"]
    assert row["verdict"] == "hurts"
    m = budget.moving_row(moving, "warp")
    assert m["moving"] and m["direction"] == "shrinking" and m["ci_high"] < 0
    words = budget.budget_words("hurts", row["effect"], EPOCHS, by, m)
    assert words.startswith("hurts at 40 epochs (shrinking: +0.") and "run longer" in words
    peak = by[by["augmentation"] == "warp"]["effect"].max()
    assert f"{peak:+.3f}" in words
    # the others do nothing at any budget and are not moving
    assert not moving.set_index("augmentation").loc[["flip", "contrast"], "moving"].any()


def test_a_stable_effect_is_not_budget_bound():
    curves, table = simulate(shift={"warp": 0.05})
    full, by, moving = analyse(curves, table)
    row = full.set_index("augmentation").loc["warp"]
    assert row["verdict"] == "hurts"
    m = budget.moving_row(moving, "warp")
    assert not m["moving"]
    assert budget.budget_words("hurts", row["effect"], EPOCHS, by, m) == "hurts"


def test_a_late_benefit_is_worded_too():
    # warp converges slower (tau 6 -> 14) to a lower loss (-0.1): it helps at 40 epochs, having hurt at 30
    curves, table = simulate(slow={"warp": 8.0}, shift={"warp": -0.1})
    full, by, moving = analyse(curves, table)
    row = full.set_index("augmentation").loc["warp"]
    assert row["verdict"] == "helps"
    m = budget.moving_row(moving, "warp")
    assert m["moving"] and m["direction"] == "reversing" and m["ci_high"] < 0
    assert budget.budget_words("helps", row["effect"], EPOCHS, by, m).startswith("helps at 40 epochs (reversing: +0.")


def test_outcomes_at_takes_the_best_within_the_budget_and_maps_seed_indices_to_positions():
    curves, table = simulate()
    at = budget.outcomes_at(curves, table, 10)
    c = curves[(curves["trial"] == 3) & (curves["repeat"] == 6) & (curves["epoch"] < 10)]
    got = at[(at["trial"] == 3) & (at["repeat"] == 2)]["best_val_loss"].iloc[0]
    assert got == c["val_loss"].min()


def test_configurations_are_distinct_by_their_mean_and_paired_against_none():
    from augsweep.report import configurations as conf

    curves, table = simulate(shift={"warp": -0.05, "flip": 0.03})
    two = pd.concat([table, table.assign(block=1, trial=table["trial"] + 8,
                                         best_val_loss=table["best_val_loss"] + 0.001)], ignore_index=True)
    c = conf.configurations(two, AUGS, margin=0.02, alpha_look=0.05)
    assert list(c.columns) == conf.CONFIG_COLUMNS and len(c) == 8 and c["configuration"].is_unique
    assert c.iloc[0]["configuration"] == "d2 contrast+warp" or c.iloc[0]["configuration"] == "d2 warp"
    row = c.set_index("configuration").loc["d2 warp"]
    assert row["n_trials"] == 2 and row["n_seeds"] == 8 and row["verdict"] == "helps"
    assert abs(row["diff_vs_none"] + 0.05) < 0.01
    assert c.set_index("configuration").loc["d2 none", "verdict"] == "baseline"
    effects = inference.effects(two, AUGS, inference.VerdictRule(margin=0.02))
    words = conf.best_words(c, effects, None, AUGS, 0.05)
    assert words[0].startswith("Best configuration by its mean over 8 seed(s) (2 trial(s)): **d2 ")
    hurt = c.set_index("configuration").loc[["d2 flip+warp"]].reset_index()
    assert "most likely noise" in conf.best_words(hurt, effects, None, AUGS, 0.05)[1]


def test_budget_figure_has_a_panel_per_augmentation_on_its_own_scale_with_whole_epochs():
    from augsweep import plots

    # A 3-epoch run: flip's large harm beside warp's small reversal (+0.04 at 1 epoch, -0.05 at 3).
    effects = {"flip": [0.2, 0.35, 0.5], "contrast": [0.0, -0.01, -0.01], "warp": [0.04, 0.0, -0.05]}
    by = pd.DataFrame([{"augmentation": a, "epochs": e + 1, "effect": v, "ci_low": v - 0.01, "ci_high": v + 0.01,
                        "n_seeds": 4} for a, values in effects.items() for e, v in enumerate(values)])
    fig = plots.effect_vs_budget(by, epochs=3, margin=0.02)
    panels = {ax.get_title(loc="left"): ax for ax in fig.axes if ax.get_visible() and ax.axison}
    assert sorted(panels) == sorted(effects)
    for name, ax in panels.items():
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), (name, ticks)
        y_low, y_high = ax.get_ylim()
        assert y_low <= -0.02 and y_high >= 0.02, name  # 0 and the ±margin band are always in view
        assert any(set(line.get_ydata()) == {0} for line in ax.get_lines()), name  # the 0 line
    warp = panels["warp"].get_ylim()
    assert warp[1] - warp[0] < 0.2 and warp[0] < -0.05 and warp[1] > 0.04  # its own scale, not flip's 0..0.5
    assert panels["flip"].get_ylim()[1] > 0.5
