"""Ablation statistics on planted per-seed tables, and variant construction (pure, no training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from augsweep import inference
from augsweep.experiment import load_experiment
from augsweep.experiment.space import TrialConfig
from augsweep.experiment.variants import ADD_ONE_IN, LEAVE_ONE_OUT, build_variants, candidates, comparisons, config_key
from augsweep.report import stats
from augsweep.report.ablation_analysis import disagreements, interactions, primary_rows, side_by_side
from tests.helpers import tiny_experiment

FLIP = ("flip", (("mode", "horizontal"),))
CONTRAST = ("contrast", (("factor", 0.3),))


def test_variants_leave_one_out_add_one_in_and_baselines(write_experiment):
    exp = load_experiment(write_experiment(tiny_experiment(search_space={
        "depth": {"low": 1, "high": 2},
        "augmentations": {"flip": {"mode": ["horizontal"]}, "contrast": {"factor": [0.1, 0.5]},
                          "rotation": {"factor": [0.1, 0.3]}}})))
    base = TrialConfig(2, 32, 6, 0.003, (FLIP, CONTRAST))
    extra = candidates(base, exp)
    assert [n for n, _ in extra] == ["flip", "contrast", "rotation"]
    assert dict(extra)["contrast"] == (("factor", 0.3),)  # the base's magnitude, not the midpoint
    assert dict(extra)["rotation"] == (("factor", pytest.approx(0.2)),)  # the search space's midpoint
    variants = build_variants(base, extra)
    by_name = {v.name: v for v in variants}
    assert list(by_name) == ["base", "base-flip", "base-contrast", "none", "none+flip", "none+contrast",
                             "none+rotation", "randaugment", "trivialaugment"]
    assert by_name["base-flip"].config.enabled == {"contrast": {"factor": 0.3}}
    assert by_name["base-contrast"].config.enabled == {"flip": {"mode": "horizontal"}}
    assert by_name["none"].config.enabled == {}
    assert by_name["none+rotation"].config.enabled == {"rotation": {"factor": pytest.approx(0.2)}}
    assert set(by_name["randaugment"].config.enabled) == {"randaugment"}
    assert set(by_name["trivialaugment"].config.enabled) == {"trivialaugment"}
    # Everything but the augmentations is the base's, so differences are the augmentations' alone.
    assert {(v.config.depth, v.config.filters, v.config.learning_rate) for v in variants} == {(2, 32, 0.003)}
    # Identical configurations share trainings: base minus contrast == none + flip.
    assert by_name["base-contrast"].key == by_name["none+flip"].key != by_name["base"].key
    assert len({v.key for v in variants}) == 7
    comps = comparisons(variants)
    loo = comps[comps["comparison"] == LEAVE_ONE_OUT]
    assert list(zip(loo["augmentation"], loo["with_variant"], loo["without_variant"])) == [
        ("flip", "base", "base-flip"), ("contrast", "base", "base-contrast")]
    add = comps[comps["comparison"] == ADD_ONE_IN]
    assert list(zip(add["augmentation"], add["with_variant"], add["without_variant"])) == [
        ("flip", "none+flip", "none"), ("contrast", "none+contrast", "none"), ("rotation", "none+rotation", "none")]
    assert [v.name for v in build_variants(base, extra, baselines=False)][-1] == "none+rotation"


def test_config_key_ignores_augmentation_order():
    a = TrialConfig(1, augmentations=(FLIP, CONTRAST))
    b = TrialConfig(1, augmentations=(CONTRAST, FLIP))
    assert config_key(a) == config_key(b) != config_key(TrialConfig(2, augmentations=(FLIP, CONTRAST)))


def planted_runs(effects: dict[str, float], seeds: int = 8, noise: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """Per-seed best_val_loss for `none`, `none+<aug>` with a planted effect each, and per-seed noise."""
    rng = np.random.default_rng(seed)
    base = 0.5 + 0.2 * rng.standard_normal(seeds)  # big seed-to-seed spread, shared by all variants
    rows = [{"variant": "none", "seed": s, "best_val_loss": base[s], "final_loss": 1.0} for s in range(seeds)]
    for aug, effect in effects.items():
        for s in range(seeds):
            rows.append({"variant": f"none+{aug}", "seed": s, "final_loss": 1.0 + effect,
                         "best_val_loss": base[s] + effect + noise * rng.standard_normal()})
    return pd.DataFrame(rows)


def add_comparisons(augs) -> pd.DataFrame:
    return pd.DataFrame([{"augmentation": a, "comparison": ADD_ONE_IN, "with_variant": f"none+{a}",
                          "without_variant": "none"} for a in augs])


def test_paired_effects_find_planted_signs_order_and_verdicts():
    runs = planted_runs({"flip": 0.1, "contrast": 0.0, "rotation": -0.08})
    out = inference.ablation_effects(runs, add_comparisons(["flip", "contrast", "rotation"]), margin=0.02)
    assert list(out["augmentation"]) == ["rotation", "contrast", "flip"]  # best (most negative) first
    v = dict(zip(out["augmentation"], out["verdict"]))
    assert v == {"rotation": "helps", "contrast": "negligible", "flip": "hurts"}
    row = out.set_index("augmentation").loc["flip"]
    assert row["n_seeds"] == 8 and row["ci_low"] < row["effect"] < row["ci_high"]
    assert abs(row["effect"] - 0.1) < 0.015 and row["ci_high"] - row["ci_low"] < 0.03
    # The seed-to-seed spread (0.2) is 20x the effect: only pairing by seed makes it visible.
    assert runs.groupby("variant")["best_val_loss"].std().min() > 0.1
    # One rule: the interval excludes 0 exactly when the adjusted p is below 0.05.
    assert ((out["p_value"] < 0.05) == ((out["ci_low"] > 0) | (out["ci_high"] < 0))).all()


def test_two_seeds_that_agree_in_sign_are_not_a_verdict():
    runs = planted_runs({"flip": 0.03}, seeds=2, noise=0.02, seed=3)
    row = inference.ablation_effects(runs, add_comparisons(["flip"]), margin=0.01).iloc[0]
    assert row["verdict"] == "undecided" and row["mde"] > abs(row["effect"])


def test_paired_effects_pair_only_common_seeds_and_handle_missing_variants():
    runs = planted_runs({"flip": 0.1}, seeds=6)
    runs = runs[~((runs["variant"] == "none+flip") & (runs["seed"] == 5))]
    comps = add_comparisons(["flip", "crop"])  # crop was never trained
    out = inference.ablation_effects(runs, comps, margin=0.02).set_index("augmentation")
    assert out.loc["flip", "n_seeds"] == 5
    assert out.loc["crop", "n_seeds"] == 0 and np.isnan(out.loc["crop", "effect"])
    assert out.loc["crop", "verdict"] == "undecided"


def test_primary_rows_prefer_leave_one_out_and_interactions_need_a_decided_contrast():
    paired = pd.DataFrame([
        {"augmentation": "flip", "comparison": LEAVE_ONE_OUT, "n_pairs": 5, "effect": 0.05, "verdict": "hurts"},
        {"augmentation": "flip", "comparison": ADD_ONE_IN, "n_pairs": 5, "effect": -0.04, "verdict": "helps"},
        {"augmentation": "contrast", "comparison": ADD_ONE_IN, "n_pairs": 5, "effect": -0.01,
         "verdict": "undecided"},
    ])
    primary = primary_rows(paired)
    assert list(zip(primary["augmentation"], primary["comparison"])) == [("contrast", ADD_ONE_IN),
                                                                         ("flip", LEAVE_ONE_OUT)]
    side = side_by_side(paired).set_index("augmentation")
    assert side.loc["flip", "agree"] == "no" and side.loc["contrast", "agree"] == ""
    # Two verdicts that differ are not an interaction: the paired contrast must be decided across seeds.
    comps = pd.DataFrame([dict(augmentation="flip", comparison=LEAVE_ONE_OUT, with_variant="base",
                               without_variant="base-flip"),
                          dict(augmentation="flip", comparison=ADD_ONE_IN, with_variant="none+flip",
                               without_variant="none")])
    rng = np.random.default_rng(0)
    seeds = np.arange(8)
    shift = rng.normal(0, 0.2, size=8)  # seed effect shared by every variant

    def runs_for(loo_effect, add_effect):
        rows = []
        for variant, value in (("base", loo_effect), ("base-flip", 0.0), ("none+flip", add_effect), ("none", 0.0)):
            for s, sh in zip(seeds, shift):
                rows.append(dict(variant=variant, seed=s, best_val_loss=0.5 + sh + value + rng.normal(0, 0.003)))
        return pd.DataFrame(rows)

    same = runs_for(0.05, 0.05)
    assert disagreements(paired, interactions(same, comps, margin=0.01)) == []
    different = runs_for(0.1, -0.05)
    notes = disagreements(paired, interactions(different, comps, margin=0.01))
    assert len(notes) == 1 and notes[0].startswith("flip:") and "interact" in notes[0]


def test_per_class_effects_highlight_the_class_an_augmentation_hurts():
    rows = []
    for s in range(4):
        for cls, loss in (("car", 0.3), ("truck", 0.4), ("bus", 0.5)):
            rows.append({"variant": "none", "seed": s, "class": cls, "val_loss": loss, "val_accuracy": 0.8})
            hurt = 0.3 if cls == "bus" else -0.05
            rows.append({"variant": "none+rotation", "seed": s, "class": cls, "val_loss": loss + hurt,
                         "val_accuracy": 0.8 - (0.2 if cls == "bus" else -0.02)})
    out = stats.per_class_effects(pd.DataFrame(rows), add_comparisons(["rotation"]))
    assert len(out) == 3 and (out["n_pairs"] == 4).all()
    worst = out[out["worst"]]
    assert list(worst["class"]) == ["bus"]
    assert worst["loss_change"].iloc[0] == pytest.approx(0.3)
    assert worst["accuracy_change"].iloc[0] == pytest.approx(-0.2)
    assert out.set_index("class").loc["car", "loss_change"] == pytest.approx(-0.05)


def test_affinity_and_diversity_are_paired_ratios():
    runs = pd.DataFrame([
        {"variant": "none", "seed": 0, "final_loss": 0.2}, {"variant": "none", "seed": 1, "final_loss": 0.4},
        {"variant": "none+flip", "seed": 0, "final_loss": 0.3}, {"variant": "none+flip", "seed": 1, "final_loss": 0.6},
    ])
    affinity = pd.DataFrame([{"seed": 0, "augmentation": "flip", "affinity": 0.8},
                             {"seed": 1, "augmentation": "flip", "affinity": 0.6}])
    out = stats.affinity_diversity(runs, affinity, add_comparisons(["flip"]))
    assert out.iloc[0]["affinity"] == pytest.approx(0.7)
    assert out.iloc[0]["diversity"] == pytest.approx(1.5)


def test_per_class_effects_of_trainings_that_all_diverged_have_no_worst_class():
    """An ablation whose trainings all diverged (learning_rate 1e9) has no finite class loss: no worst class is
    marked, and the report goes on (pandas refuses an all-NA idxmax)."""
    rows = [{"variant": v, "seed": s, "class": cls, "val_loss": float("nan"), "val_accuracy": 0.5}
            for v in ("none", "none+rotation") for s in range(2) for cls in ("car", "truck")]
    out = stats.per_class_effects(pd.DataFrame(rows), add_comparisons(["rotation"]))
    assert len(out) == 2 and not out["worst"].any() and out["loss_change"].isna().all()
