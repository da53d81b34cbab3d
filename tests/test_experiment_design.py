"""Attribution designs: sizes, resolution (checked from column products), crossing, magnitudes, run order."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from augsweep.experiment.design import (
    DesignError,
    block_points,
    crossed,
    level_columns,
    magnitude_levels,
    min_trials,
    plan_for,
    two_level_design,
)
from augsweep.experiment.schema import Choice, SearchSpace

AUGS = ["flip", "contrast", "rotation", "warp"]


def _min_word_length(matrix: np.ndarray, up_to: int) -> int | None:
    """Shortest set of columns whose +-1 product is constant (a word of the defining relation)."""
    X = np.where(matrix, 1, -1)
    n, k = X.shape
    for r in range(1, min(up_to, k) + 1):
        for cols in itertools.combinations(range(k), r):
            if abs(X[:, list(cols)].prod(axis=1).sum()) == n:
                return r
    return None


def _main_aliased_with_two_factor(matrix: np.ndarray) -> list[tuple[int, int, int]]:
    """Triples (i, j, l): main effect i not orthogonal to the j x l interaction."""
    X = np.where(matrix, 1, -1)
    bad = []
    for i in range(X.shape[1]):
        for j, m in itertools.combinations([c for c in range(X.shape[1]) if c != i], 2):
            if (X[:, i] * X[:, j] * X[:, m]).sum() != 0:
                bad.append((i, j, m))
    return bad


def test_full_factorial_when_it_fits():
    plan = two_level_design(AUGS, 16)
    assert plan.full and plan.resolution is None and plan.generators == () and plan.runs == 16
    assert plan.matrix.dtype == bool and plan.matrix.shape == (16, 4)
    assert len({tuple(r) for r in plan.matrix}) == 16


@pytest.mark.parametrize("k,max_runs,runs", [(4, 8, 8), (4, 15, 8), (5, 16, 16), (6, 16, 16), (8, 16, 16),
                                             (9, 32, 32), (11, 32, 32), (16, 32, 32), (20, 64, 64)])
def test_fraction_is_smallest_and_resolution_at_least_iv(k, max_runs, runs):
    plan = two_level_design([f"a{i}" for i in range(k)], max_runs)
    assert plan.runs == runs and plan.matrix.shape == (runs, k) and not plan.full
    assert plan.resolution >= 4
    assert (plan.matrix.sum(axis=0) == runs // 2).all()  # balanced
    assert _main_aliased_with_two_factor(plan.matrix) == []
    if k <= 11:  # the claimed resolution is the real shortest word
        assert _min_word_length(plan.matrix, plan.resolution) == plan.resolution
    assert len(plan.generators) == k - int(np.log2(runs))


def test_five_factors_in_sixteen_runs_are_resolution_v():
    plan = two_level_design(AUGS + ["warp2"], 16)
    assert plan.resolution == 5 and plan.generators == ("warp2=flip*contrast*rotation*warp",)
    assert _min_word_length(plan.matrix, 5) == 5


@pytest.mark.parametrize("k,max_runs,needed", [(9, 16, 32), (3, 7, 8), (4, 7, 8), (2, 3, 4)])
def test_design_error_names_factors_and_runs(k, max_runs, needed):
    with pytest.raises(DesignError) as err:
        two_level_design([f"a{i}" for i in range(k)], max_runs)
    assert isinstance(err.value, ValueError)
    msg = str(err.value)
    assert f"{k} factors" in msg and f"at least {needed} runs" in msg and f"only {max_runs} runs" in msg


@pytest.mark.parametrize("augs", range(1, 8))
@pytest.mark.parametrize("depths", [(2,), (2, 3), (1, 2, 3)])
@pytest.mark.parametrize("sequential", [False, True])
def test_min_trials_is_the_fewest_trials_a_design_fits_in(augs, depths, sequential):
    """The number the "cannot fit" message asks for: it fits, one fewer does not."""
    space = SearchSpace(depth=Choice(depths), augmentations=tuple((f"a{i}", ()) for i in range(augs)))
    need = min_trials(space, sequential)
    plan_for(space, need, sequential)
    with pytest.raises(DesignError):
        plan_for(space, need - 1, sequential)


def test_design_is_deterministic_and_read_only():
    a, b = two_level_design(AUGS + ["x", "y"], 16), two_level_design(AUGS + ["x", "y"], 16)
    assert np.array_equal(a.matrix, b.matrix) and a.generators == b.generators
    with pytest.raises(ValueError):
        a.matrix[0, 0] = True


def test_crossed_with_depths():
    plan = two_level_design(AUGS, 8)
    pts = crossed(plan, [1, 2, 3])
    assert len(pts) == 24
    assert Counter(p["depth"] for p in pts) == {1: 8, 2: 8, 3: 8}
    for d in (1, 2, 3):
        rows = [tuple(p["switches"][a] for a in AUGS) for p in pts if p["depth"] == d]
        assert sorted(rows) == sorted(tuple(bool(v) for v in r) for r in plan.matrix)


def _independent_of_other_switches(plan, levels, key, aug):
    """Within the runs where `aug` is on, the magnitude's distribution is the same with and without every
    other factor (checked by counting, independently of how the design chose its columns)."""
    j = plan.factors.index(aug)
    on = plan.matrix[:, j]
    for b in range(len(plan.factors)):
        if b == j:
            continue
        with_b = Counter(levels[i][key] for i in range(plan.runs) if on[i] and plan.matrix[i, b])
        without_b = Counter(levels[i][key] for i in range(plan.runs) if on[i] and not plan.matrix[i, b])
        if with_b != without_b:
            return False
    return True


def test_magnitudes_are_balanced_levels_in_the_full_factorial():
    plan = two_level_design(AUGS, 16)
    ranges = {"rotation": {"factor": (0.02, 0.3)}, "contrast": {"factor": (0.1, 0.5)}, "warp": {"factor": (1, 4)}}
    levels, how = magnitude_levels(plan, ranges, {})
    assert how == {"aug_rotation_factor": "levels 0.02|0.3", "aug_contrast_factor": "levels 0.1|0.5",
                   "aug_warp_factor": "levels 1|4"}
    for aug, params in ranges.items():
        key = f"aug_{aug}_factor"
        on = plan.matrix[:, plan.factors.index(aug)]
        vals = [levels[i][key] for i in range(16) if on[i]]
        assert Counter(vals) == {params["factor"][0]: 4, params["factor"][1]: 4}  # half each
        assert _independent_of_other_switches(plan, levels, key, aug)
        # ... and against every two-factor interaction of the others (nothing leaks into an interaction)
        others = [b for b in range(4) if b != plan.factors.index(aug)]
        x = np.where(plan.matrix, 1, -1)
        z = np.array([(levels[i][key] - np.mean(vals)) if on[i] else 0.0 for i in range(16)])
        for b, c in itertools.combinations(others, 2):
            assert abs(float(z @ (x[:, b] * x[:, c]))) < 1e-9
    assert isinstance(levels[0]["aug_warp_factor"], int)


def test_magnitudes_fixed_when_the_design_has_no_room():
    # Four factors in eight runs: within the runs where one is on, the other three use every degree of
    # freedom, so no magnitude column is balanced: the range is fixed at its midpoint, a choice at its first.
    plan = two_level_design(AUGS, 8)
    levels, how = magnitude_levels(plan, {"rotation": {"factor": (0.0, 0.4)}}, {"warp": {"kind": ["grid", "elastic"]}})
    assert how == {"aug_rotation_factor": "fixed at 0.2", "aug_warp_kind": "fixed at grid"}
    assert {m["aug_rotation_factor"] for m in levels} == {0.2}


def test_magnitude_choices_balanced_when_there_is_room():
    plan = two_level_design(["a", "b", "c", "d"], 16)
    levels, how = magnitude_levels(plan, {}, {"a": {"kind": ["x", "y"]}})
    assert how == {"aug_a_kind": "choices x|y"}
    assert _independent_of_other_switches(plan, levels, "aug_a_kind", "a")
    assert Counter(levels[i]["aug_a_kind"] for i in range(16) if plan.matrix[i, 0]) == {"x": 4, "y": 4}


def test_magnitudes_fixed_rather_than_leak_into_a_separated_interaction():
    # Three factors in their 8-run full factorial: within the runs where a is on, the only column balanced
    # against b and c is b x c itself, so a's dose-response would be read as a b x c interaction, which this
    # design separates and tests. The choice is fixed instead; so is a range of the 16-run resolution V plan
    # of four switches and depth (every free column is a two-factor interaction).
    plan = two_level_design(["a", "b", "c"], 8)
    _, how = magnitude_levels(plan, {}, {"a": {"kind": ["x", "y"]}})
    assert how == {"aug_a_kind": "fixed at x"}
    plan = two_level_design(["a", "b", "c", "d", "depth"], 16)
    assert plan.resolution == 5
    _, how = magnitude_levels(plan, {"a": {"factor": (0.1, 0.3)}}, {})
    assert how == {"aug_a_factor": "fixed at 0.2"}


def test_level_columns_catch_a_leaking_column():
    # The oracle above must be able to fail: a magnitude that follows another switch is not independent.
    plan = two_level_design(AUGS, 16)
    leaky = [{"aug_rotation_factor": 0.3 if row[1] else 0.02} for row in plan.matrix]
    assert not _independent_of_other_switches(plan, leaky, "aug_rotation_factor", AUGS[2])
    cols = level_columns(plan, {a: 1 for a in AUGS})
    assert all(len(c) == 1 for c in cols.values())


def test_block_points_flat_convention_and_order():
    plan = two_level_design(AUGS, 16)
    ranges = {"rotation": {"factor": (0.0, 0.3)}, "contrast": {"factor": (0.1, 0.5)}}
    choices = {"warp": {"kind": ["grid", "elastic"]}}
    b0 = block_points(plan, [1, 2], ranges, choices, seed=5, block=0)
    assert b0 == block_points(plan, [1, 2], ranges, choices, seed=5, block=0)
    b1 = block_points(plan, [1, 2], ranges, choices, seed=5, block=1)

    def key(p):
        return (p["depth"], *(p[f"aug_{a}"] for a in AUGS))

    assert sorted(map(key, b0)) == sorted(map(key, b1))  # same design points

    def canon(pts):
        return sorted(tuple(sorted(p.items())) for p in pts)

    assert canon(b0) == canon(b1)  # with the same magnitudes: blocks replicate the design over seeds
    assert [key(p) for p in b0] != [key(p) for p in b1]  # shuffled differently per block
    assert [key(p) for p in b0] != [(d, *map(bool, r)) for r in plan.matrix for d in (1, 2)]
    for p in b0 + b1:
        assert set(p) >= {"depth", *(f"aug_{a}" for a in AUGS)}
        assert ("aug_rotation_factor" in p) == p["aug_rotation"]
        assert ("aug_contrast_factor" in p) == p["aug_contrast"]
        assert ("aug_warp_kind" in p) == p["aug_warp"]
        assert "aug_flip_mode" not in p
        if p["aug_rotation"]:
            assert 0.0 <= p["aug_rotation_factor"] <= 0.3
    with pytest.raises(ValueError):
        block_points(plan, [1], {"blur": {"sigma": (0, 1)}}, {}, seed=0, block=0)


def test_the_alias_note_offers_a_trial_count_that_runs_the_crossed_design():
    from augsweep.experiment import load_experiment
    from augsweep.experiment.design import crossed_trials, plan_for
    from tests.helpers import ROOT

    exp = load_experiment(ROOT / "experiments" / "default.yaml")
    assert plan_for(exp.search_space, exp.trials, sequential=True).generators  # the default is a fraction
    n = crossed_trials(exp.search_space, sequential=True)
    plan = plan_for(exp.search_space, n, sequential=True)
    assert plan.full and not plan.generators and n == 2 * plan.runs * 2  # two blocks of every depth
    assert not plan_for(exp.search_space, n - 1, sequential=True).full
