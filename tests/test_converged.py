"""`train.until_converged`: validation, study identity, and a real (tiny) training that stops when converged."""

from __future__ import annotations

import pytest

from augsweep.experiment import load_experiment
from augsweep.experiment.identity import identity
from augsweep.experiment.schema import ConfigError, Convergence
from tests.helpers import run_in_process, tiny_experiment


def converged(**train):
    exp = tiny_experiment()
    exp["train"] = {"batch_size": 32, "learning_rate": 0.003, **train}
    return exp


def test_option_sets_the_cap_and_joins_the_identity_only_when_set(write_experiment):
    plain = load_experiment(write_experiment(tiny_experiment(), "a.yaml"))
    assert plain.train.until_converged is None and "until_converged" not in plain.resolved()["train"]
    conv = load_experiment(write_experiment(converged(until_converged={"patience": 3, "max_epochs": 40}), "b.yaml"))
    assert conv.train.until_converged == Convergence(3, 40) and conv.train.epochs == 40
    assert conv.resolved()["train"]["until_converged"] == {"patience": 3, "max_epochs": 40}
    other = load_experiment(write_experiment(converged(until_converged={"patience": 4, "max_epochs": 40}), "c.yaml"))
    assert len({identity(plain), identity(conv), identity(other)}) == 3


@pytest.mark.parametrize("train, message", [
    ({"until_converged": {"patience": 3}}, "train.until_converged.max_epochs is required"),
    ({"until_converged": {"patience": 0, "max_epochs": 9}}, "train.until_converged.patience must be in [1, 10000]. "
                                                            "Received: patience=0"),
    ({"until_converged": {"patience": 9, "max_epochs": 9}},
     "patience must be below max_epochs (9). Received: patience=9"),
    ({"until_converged": {"patience": 2, "max_epochs": 9, "delta": 1}},
     "train.until_converged.delta is not a known key"),
    ({"until_converged": {"patience": 2, "max_epochs": 9}, "epochs": 5}, "train.epochs cannot be combined with "
                                                                        "train.until_converged"),
    ({"until_converged": 5}, "train.until_converged must be a mapping. Received: until_converged=5"),
])
def test_bad_values_are_one_line_errors(write_experiment, train, message):
    with pytest.raises(ConfigError, match=None) as e:
        load_experiment(write_experiment(converged(**train)))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_cli_exit_2(tmp_path, write_experiment):
    path = write_experiment(converged(until_converged={"patience": 2, "max_epochs": 9}, epochs=5))
    r = run_in_process("sweep.py", str(path), "--mlruns", str(tmp_path / "m"))
    assert r.returncode == 2 and "Received: epochs=5" in r.stderr and "Traceback" not in r.stderr


def test_training_stops_when_converged_and_keeps_the_best_weights():
    from augsweep.experiment.schema import DatasetConfig, TrainConfig
    from augsweep.experiment.seeding import repeat_seeds
    from augsweep.experiment.space import TrialConfig
    from augsweep.training.data import load_dataset
    from augsweep.training.train import run

    data = load_dataset(DatasetConfig(source="synthetic", image_size=(16, 16), samples=96), seed=0)
    settings = TrainConfig(epochs=60, batch_size=32, learning_rate=0.05, until_converged=Convergence(2, 60))
    res = run(TrialConfig(depth=1, augmentations=()), data, settings, repeat_seeds(0, 0))
    h = res.history
    assert len(h) < 60  # stopped by EarlyStopping before the cap
    best = int(h["val_loss"].to_numpy().argmin())
    assert len(h) - 1 - best == 2  # exactly `patience` epochs without improvement


def test_terminal_top_k_shows_distinct_configurations_by_their_mean():
    import optuna

    from augsweep.runs.sweep import distinct_best

    def trial(number, name, value):
        t = optuna.trial.create_trial(value=value, user_attrs={"config_name": name})
        t.number = number
        return t

    trials = [trial(0, "d2 warp", 0.30), trial(1, "d2 none", 0.33), trial(2, "d2 warp", 0.40),
              trial(3, "d2 flip", 0.34)]
    best = distinct_best(trials, 5)
    assert [(t.user_attrs["config_name"], round(m, 3), n) for t, m, n in best] == [
        ("d2 none", 0.33, 1), ("d2 flip", 0.34, 1), ("d2 warp", 0.35, 2)]
    assert best[2][0].number == 0  # shown by its best trial
