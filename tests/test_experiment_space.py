"""Search-space sampling with real Optuna trials (FixedTrial and a seeded sampler)."""

from __future__ import annotations

import optuna

from augsweep.experiment import parse_search_space
from augsweep.experiment.space import TrialConfig, grid_search_space, grid_size, sample

SPACE = parse_search_space(
    {
        "depth": {"low": 1, "high": 3},
        "learning_rate": {"low": 1e-4, "high": 1e-2},
        "augmentations": {
            "flip": {"mode": ["horizontal", "vertical"]},
            "rotation": {"factor": [0.02, 0.5]},
            "contrast": {"factor": 0.2},
        },
    },
    "inline",
)


def test_fixed_trial_gives_flat_snake_case_params():
    trial = optuna.trial.FixedTrial({
        "depth": 2, "learning_rate": 0.003, "aug_flip": True, "aug_flip_mode": "vertical",
        "aug_rotation": True, "aug_rotation_factor": 0.25, "aug_contrast": False,
    })
    cfg = sample(trial, SPACE, default_learning_rate=1e-3)
    assert cfg.depth == 2 and cfg.learning_rate == 0.003
    assert cfg.enabled == {"flip": {"mode": "vertical"}, "rotation": {"factor": 0.25}}
    flat = cfg.flat(SPACE.augmentation_names)
    assert flat["aug_contrast"] is False and "aug_contrast_factor" not in flat
    assert flat["aug_rotation_factor"] == 0.25
    assert TrialConfig.from_flat(flat) == cfg
    assert cfg.label() == "d2 flip+rotation"


def test_fixed_magnitude_is_not_searched_but_recorded():
    trial = optuna.trial.FixedTrial({"depth": 1, "learning_rate": 0.001, "aug_flip": False,
                                     "aug_rotation": False, "aug_contrast": True})
    cfg = sample(trial, SPACE, 1e-3)
    assert cfg.enabled == {"contrast": {"factor": 0.2}}


def test_seeded_sampler_is_reproducible_and_stays_in_range():
    def draw():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
        out = []
        for _ in range(20):
            t = study.ask()
            out.append(sample(t, SPACE, 1e-3))
            study.tell(t, 0.0)
        return out

    a, b = draw(), draw()
    assert a == b
    for cfg in a:
        assert 1 <= cfg.depth <= 3 and 1e-4 <= cfg.learning_rate <= 1e-2
        if "rotation" in cfg.enabled:
            assert 0.02 <= cfg.enabled["rotation"]["factor"] <= 0.5
    assert {c.depth for c in a} == {1, 2, 3}


def test_grid_is_full_factorial_with_midpoints():
    grid = grid_search_space(SPACE)
    assert grid == {"depth": [1, 2, 3], "aug_flip": [False, True], "aug_rotation": [False, True],
                    "aug_contrast": [False, True]}
    assert grid_size(SPACE) == 24
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    seen = set()

    def objective(t):
        cfg = sample(t, SPACE, 1e-3, grid=True)
        if "rotation" in cfg.enabled:
            assert cfg.enabled["rotation"]["factor"] == (0.02 + 0.5) / 2
        assert cfg.learning_rate == (1e-4 * 1e-2) ** 0.5  # log-scale midpoint
        seen.add((cfg.depth, *sorted(cfg.enabled)))
        return 0.0

    study.optimize(objective, n_trials=50)  # GridSampler stops the study when the grid is exhausted
    assert len(study.trials) == 24 and len(seen) == 24
