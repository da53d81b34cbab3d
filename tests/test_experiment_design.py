"""Attribution designs: sizes, resolution (checked from column products), crossing, magnitudes, run order."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from augsweep.experiment.design import DesignError, block_points, crossed, magnitudes, two_level_design

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
        for j, l in itertools.combinations([c for c in range(X.shape[1]) if c != i], 2):
            if (X[:, i] * X[:, j] * X[:, l]).sum() != 0:
                bad.append((i, j, l))
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


def test_magnitudes_deterministic_stratified_and_resumable():
    ranges = {"aug_rotation_factor": (0.0, 0.4), "aug_contrast_factor": (0.1, 0.9), "aug_zoom_px": (1, 4),
              "aug_warp_kind": ["grid", "elastic", "perspective"]}
    m0 = magnitudes(16, ranges, seed=3)
    assert m0 == magnitudes(16, dict(reversed(list(ranges.items()))), seed=3)
    assert magnitudes(16, ranges, seed=4) != m0
    for block in (m0,):
        u = np.array([p["aug_rotation_factor"] for p in block]) / 0.4
        # scrambled Sobol: each 1/16 stratum of every dimension holds exactly one of 16 points
        assert sorted(np.floor(u * 16).astype(int)) == list(range(16))
        assert all(p["aug_zoom_px"] in (1, 2, 3, 4) and isinstance(p["aug_zoom_px"], int) for p in block)
        assert Counter(Counter(p["aug_zoom_px"] for p in block).values()) == {4: 4}
        kinds = Counter(p["aug_warp_kind"] for p in block)
        assert set(kinds) == {"grid", "elastic", "perspective"} and max(kinds.values()) - min(kinds.values()) <= 1


def test_magnitudes_not_aliased_with_switches():
    plan = two_level_design(AUGS, 16)
    X = np.where(plan.matrix, 1, -1)
    columns = [X[:, j] for j in range(4)] + [X[:, i] * X[:, j] for i, j in itertools.combinations(range(4), 2)]
    for seed in range(4):
        u = np.array([m["r"] for m in magnitudes(16, {"r": (0.0, 1.0)}, seed=seed)])
        for col in columns:
            on = col > 0
            # Unpermuted, Sobol's (Gray-code) leading digit reproduces a product of standard-order
            # columns exactly: the magnitude would be aliased with an interaction.
            assert not (u[on].max() < u[~on].min() or u[~on].max() < u[on].min())


def test_block_points_flat_convention_and_order():
    plan = two_level_design(AUGS, 8)
    ranges = {"rotation": {"factor": (0.0, 0.3)}, "contrast": {"factor": (0.1, 0.5)}}
    choices = {"warp": {"kind": ["grid", "elastic"]}}
    b0 = block_points(plan, [1, 2], ranges, choices, seed=5, block=0)
    assert b0 == block_points(plan, [1, 2], ranges, choices, seed=5, block=0)
    b1 = block_points(plan, [1, 2], ranges, choices, seed=5, block=1)
    key = lambda p: (p["depth"], *(p[f"aug_{a}"] for a in AUGS))
    assert sorted(map(key, b0)) == sorted(map(key, b1))  # same design points
    canon = lambda pts: sorted(tuple(sorted(p.items())) for p in pts)
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
