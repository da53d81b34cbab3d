"""The answer a user acts on: one line per augmentation with its decided conditional effects, a budget qualifier on
every row still moving (a `negligible` one too), the margin explained where a significant effect is called
negligible, no "nan" in words, and a recommendation that says where it stands against no augmentation."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd

from augsweep import load_experiment
from augsweep.learned import LearnedCheck
from augsweep.report import configurations as conf
from augsweep.report.sweep_words import answer_blocks
from tests.helpers import tiny_experiment

NAN = float("nan")


def analysis(**over):
    """What `answer_blocks` reads of an `Analysis`, planted: flip hurts and is still shrinking, contrast is
    negligible though its interval excludes 0, warp is negligible on average but helps without flip and is still
    moving, rotation is undecided with no interval at all."""
    full = pd.DataFrame([
        {"augmentation": "flip", "effect": 0.208, "ci_low": 0.173, "ci_high": 0.242, "verdict": "hurts",
         "mde": 0.03, "blocks_to_decide": NAN},
        {"augmentation": "contrast", "effect": -0.017, "ci_low": -0.027, "ci_high": -0.007, "verdict": "negligible",
         "mde": 0.02, "blocks_to_decide": NAN},
        {"augmentation": "warp", "effect": -0.024, "ci_low": -0.048, "ci_high": 0.001, "verdict": "negligible",
         "mde": 0.03, "blocks_to_decide": NAN},
        {"augmentation": "rotation", "effect": NAN, "ci_low": NAN, "ci_high": NAN, "verdict": "undecided",
         "mde": NAN, "blocks_to_decide": NAN},
    ])
    moving = pd.DataFrame([
        {"augmentation": "flip", "at_three_quarters": 0.3, "moving": True, "direction": "shrinking"},
        {"augmentation": "warp", "at_three_quarters": 0.05, "moving": True, "direction": "reversing"},
        {"augmentation": "contrast", "at_three_quarters": -0.02, "moving": False, "direction": "stable"},
    ])
    by_budget = pd.DataFrame([{"augmentation": a, "epochs": e, "effect": v} for a, e, v in
                              [("flip", 30, 0.518), ("flip", 60, 0.208), ("warp", 30, 0.132), ("warp", 60, -0.024)]])
    conditional = pd.DataFrame([
        {"pair": "flip x warp", "augmentation": "warp", "given": "flip off", "effect": -0.046, "verdict": "helps"},
        {"pair": "flip x warp", "augmentation": "warp", "given": "flip on", "effect": -0.002,
         "verdict": "negligible"},
    ])
    configs = pd.DataFrame([
        {"configuration": "d3 contrast+warp", "n_trials": 2, "n_seeds": 8, "mean_best_val_loss": 0.317,
         "diff_vs_none": NAN, "ci_low": NAN, "ci_high": NAN, "verdict": "undecided"},
        {"configuration": "d2 none", "n_trials": 2, "n_seeds": 8, "mean_best_val_loss": 0.38,
         "diff_vs_none": NAN, "ci_low": NAN, "ci_high": NAN, "verdict": "baseline"},
    ])
    configs.attrs["n_family"] = 1
    base = dict(full=full, moving=moving, by_budget=by_budget, conditional=conditional, design={"block_size": 16},
                configurations=configs, pairs=None, augmentations=["flip", "contrast", "warp", "rotation"],
                configurations_alpha=0.01, did_not_learn=False, learned=None, num_classes=10)
    return SimpleNamespace(**{**base, **over})


def test_every_augmentation_gets_its_line_with_conditional_effects_budget_and_margin():
    exp = load_experiment(tiny_experiment(train={"epochs": 60}))
    trials = pd.DataFrame({"state": ["COMPLETE"] * 32})
    lines = answer_blocks(exp, analysis(), trials, "mlruns")
    text = "\n".join(lines)
    by = {a: next(line for line in lines if line.startswith(f"- **{a}**")) for a in ("flip", "contrast", "warp",
                                                                                   "rotation")}
    assert lines[0].count("at 60 epochs") == 2  # flip and warp qualified in the one-sentence summary
    assert "helps without flip (-0.046), does nothing with it (-0.002)" in by["warp"]
    assert "a statement about 60 epochs" in by["warp"] and "negligible" in by["warp"]  # moving negligible qualified
    assert "a statement about 60 epochs" in by["flip"] and "+0.518 at 30" in by["flip"]
    assert "distinguishable from 0 but inside ±0.02" in by["contrast"] and "statement about" not in by["contrast"]
    assert "no interval" in by["rotation"] or "not estimated" in by["rotation"]
    assert not re.search(r"\bnan\b", text), text
    assert "trained no `d3 none` to pair it with" in text  # why the best configuration has no comparison
    assert any(line.startswith("Next:") for line in lines)


def test_did_not_learn_is_one_line_with_what_to_change_and_no_verdict():
    exp = load_experiment(tiny_experiment(train={"epochs": 3}))
    check = LearnedCheck(False, math.log(2), "d1 flip", 0.6935, 0.6950, 2, 3, 0.05)
    lines = answer_blocks(exp, analysis(did_not_learn=True, learned=check, num_classes=2),
                          pd.DataFrame({"state": ["COMPLETE"] * 4}), "mlruns")
    assert len(lines) == 2 and ": The network did not learn: " in lines[0] and lines[0].startswith("On `synthetic`")
    assert "ln 2 = 0.693" in lines[0] and "`train.epochs` (now 3)" in lines[0]
    assert not any(v in "\n".join(lines) for v in ("**helps**", "**hurts**", "**negligible**"))
    assert lines[1].startswith("Next: ")


def test_a_recommendation_states_its_standing_against_no_augmentation():
    configs = pd.DataFrame([
        {"configuration": "d2 warp", "n_seeds": 8, "diff_vs_none": -0.06, "ci_low": -0.09, "ci_high": -0.03,
         "verdict": "helps"},
        {"configuration": "d2 flip", "n_seeds": 8, "diff_vs_none": -0.01, "ci_low": -0.05, "ci_high": 0.03,
         "verdict": "undecided"},
        {"configuration": "d3 flip", "n_seeds": 8, "diff_vs_none": np.nan, "ci_low": np.nan, "ci_high": np.nan,
         "verdict": "undecided"},
        {"configuration": "d2 none", "n_seeds": 8, "diff_vs_none": np.nan, "ci_low": np.nan, "ci_high": np.nan,
         "verdict": "baseline"},
    ])
    assert conf.standing(configs, "d2 warp").startswith("decided better than no augmentation (-0.060")
    assert conf.standing(configs, "d2 flip").startswith("best by its mean, not decided better than no augmentation")
    assert "trained no `d3 none`" in conf.standing(configs, "d3 flip")
    assert conf.standing(configs, "d2 none") == "it is no augmentation"
