"""Several trainings as one program (`training.group`, `--members`): each member is the training it would be alone.

On the TensorFlow backend with deterministic ops (the default) the contract is equality, not a tolerance: every
member's curves and final weights equal its one-at-a-time training's bit for bit, whatever trains beside it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from augsweep import runtime
from augsweep.experiment import DatasetConfig, TrainConfig
from augsweep.experiment.schema import Convergence
from augsweep.experiment.seeding import sweep_seeds
from augsweep.experiment.space import TrialConfig
from augsweep.training import group, train
from augsweep.training.data import load_dataset
from tests.helpers import experiment, learning_experiment, read_stores, reproduce

FLIP = ("flip", (("mode", "horizontal"),))
ROTATION = ("rotation", (("factor", 0.05),))
CONTRAST = ("contrast", (("factor", 0.3),))
SETTINGS = TrainConfig(epochs=3, batch_size=16, learning_rate=0.01)


@pytest.fixture(scope="module")
def digits():
    runtime.setup(True, False)  # as every sweep trains: deterministic ops, one thread per training
    return load_dataset(DatasetConfig("digits", (8, 8), train_samples=64, val_samples=64), 0)


def lone(config, ds, seeds, settings=SETTINGS):
    result = train.run(config, ds, settings, seeds)
    return result.history, [w.copy() for w in result.model.get_weights()]


def test_each_member_equals_its_training_alone(digits):
    """Two members (each beside another one) over three epochs, each with its own reshuffle; members of other
    configurations and depths side by side: tests/test_cotrain.py."""
    config = TrialConfig(2, filters=8, dense_units=16, learning_rate=0.01, augmentations=(FLIP, CONTRAST, ROTATION))
    seeds = [sweep_seeds(0, r) for r in range(2)]
    alone = [lone(config, digits, s) for s in seeds]
    results, program = group.run_group([group.Member(config, digits, s) for s in seeds], SETTINGS)
    assert not program.jit_compile  # as a lone training on CPU: Keras's "auto"
    for (history, weights), member in zip(alone, results):
        assert list(member.history.columns) == list(history.columns)  # Keras's names, in Keras's order
        assert member.history.equals(history)
        assert all(np.array_equal(a, b) for a, b in zip(weights, member.model.get_weights()))
        assert member.model.name == "convnet_d2"  # a saved member is named as a lone model is
    assert not results[0].history.equals(results[1].history)  # the seeds do differ


def test_a_diverging_member_ends_alone_and_leaves_the_others_untouched(digits):
    config = TrialConfig(1, filters=8, dense_units=16, learning_rate=0.01, augmentations=(FLIP,))
    poisoned = replace(digits, x_train=digits.x_train * 1e30)  # its own data: a NaN loss in its first epoch
    seeds = [sweep_seeds(0, r) for r in range(2)]
    healthy, _ = lone(config, digits, seeds[0])
    members = [group.Member(config, digits, seeds[0]), group.Member(config, poisoned, seeds[1])]
    from augsweep.runs.repeat import train_group

    done = train_group(config, [digits, poisoned], SETTINGS, seeds)
    assert done[0].history.drop(columns=["repeat", "epoch"]).equals(healthy.reset_index(drop=True))
    assert len(done[1].history) == 1 and not np.isfinite(done[1].history["loss"]).all()  # stopped at its epoch 0
    assert "diverged_epoch" in done[1].check(np.log(10)) and "diverged_epoch" not in done[0].check(np.log(10))
    assert group.groupable(members, SETTINGS) == ""


def test_members_keep_their_own_batch_orders_and_share_them_across_configurations(digits):
    a = TrialConfig(1, filters=8, dense_units=16, learning_rate=0.01)
    b = TrialConfig(2, filters=8, dense_units=16, learning_rate=0.01, augmentations=(FLIP,))
    seeds = [sweep_seeds(0, r) for r in range(2)]

    def labels(config):
        members = [group.Member(config, digits, s) for s in seeds]
        data, _ = group._tf_pipelines(members, SETTINGS, [[] for _ in members])
        batches = [y for _ in range(2) for _, y in data]  # two epochs, each its own reshuffle
        return [[np.asarray(y[k]) for y in batches] for k in range(2)]

    in_a, in_b = labels(a), labels(b)
    assert not all(np.array_equal(x, y) for x, y in zip(in_a[0], in_a[1]))  # own order seed, own order
    for k in range(2):  # member k of two configurations: the same batches (common random numbers)
        assert all(np.array_equal(x, y) for x, y in zip(in_a[k], in_b[k]))
    for k, s in enumerate(seeds):  # and the very batches its lone training's pipeline gives
        train.set_global_seed(s.order)
        alone = train.input_pipeline(digits.x_train, digits.y_train, SETTINGS.batch_size, s.order)
        assert all(np.array_equal(x, np.asarray(y)) for x, (_, y) in zip(in_a[k], [*alone, *alone]))


def test_until_converged_stops_each_member_at_its_own_epoch(digits):
    settings = replace(SETTINGS, epochs=12, learning_rate=0.05, until_converged=Convergence(patience=1, max_epochs=12))
    config = TrialConfig(1, filters=8, dense_units=16, learning_rate=0.05)
    seeds = [sweep_seeds(0, r) for r in range(3)]
    alone = [lone(config, digits, s, settings) for s in seeds]
    results, _ = group.run_group([group.Member(config, digits, s) for s in seeds], settings)
    for (history, weights), member in zip(alone, results):
        assert member.history.equals(history)
        # the weights early stopping restored, not those of the epochs the group trained on after this stop
        assert all(np.array_equal(a, b) for a, b in zip(weights, member.model.get_weights()))
    assert len({len(r.history) for r in results}) > 1, "the seeds should stop at different epochs"


def test_a_sweep_with_members_equals_the_reference_path_and_reproduces_exactly(write_experiment, tmp_path):
    """`--members 2` (branches) stores bit for bit what one at a time stores; `--members auto` (the stacked engine)
    the same within rounding (1e-5 over these 2 epochs), tagged with its engine, and both reproduce exactly.

    A branches-trained trial carries no engine tag, so `--reproduce` retrains it one repeat at a time exactly as
    it retrains a trial of the reference path; its numbers being the reference's bit for bit (asserted here), it
    reproduces as they do (a co-trained trial reproduced: tests/test_cotrain.py). The stacked one is reproduced
    here, through its engine."""
    from augsweep.runs.sweep import run_sweep
    from augsweep.stores.study import resolve_stores

    path = write_experiment(learning_experiment(repeats=2, trials=2, pruner="median", train={"epochs": 2}))
    exp = experiment(path)
    values, numbers = {}, {}
    for members in (1, 2, "auto"):
        mlruns = tmp_path / f"m{members}"
        run_sweep(exp, resolve_stores(exp, mlruns), members=members, echo=lambda line: None)
        view = read_stores(path, mlruns)
        values[members] = [(t.state.name, t.value, t.user_attrs.get("repeats")) for t in view.trials]
        numbers[members] = [t.value for t in view.trials]
        for run in sorted(view.trial_runs, key=lambda r: int(r.data.tags["trial"])):
            values[members].append(sorted((k, v) for k, v in run.data.metrics.items() if k != "trial_seconds"))
            series = [[m.value for m in view.client.get_metric_history(run.info.run_id, key)]
                      for key in sorted(run.data.metrics) if key.startswith("repeat")]  # every epoch
            values[members] += series
            numbers[members] += [v for s in series for v in s]
        assert {r.data.tags.get("members") for r in view.trial_runs} == {"1" if members == 1 else "2"}
        assert {r.data.tags.get("engine") for r in view.trial_runs} == {"stacked" if members == "auto" else None}
    assert values[1] == values[2]  # every value, repeat summary and logged metric
    assert len(numbers[1]) == len(numbers["auto"])
    assert np.allclose(numbers[1], numbers["auto"], rtol=0, atol=1e-5)
    done = reproduce(path, tmp_path / "mauto", "0")  # retrained one repeat at a time through its engine
    assert done.ok and done.worst <= 1e-6
