"""The stacked-members engine (`training.stacked`): each member keeps its own training inside one fused network.

Two contracts. Inside the engine it is equality: member k of a stacked group equals the same member trained alone
through the engine bit for bit (TensorFlow, deterministic ops), whoever trains beside it, diverging members included.
Against the reference path (`train.run`: Keras `Conv2D`/`Dense`) the engine computes the same functions with other
kernels, so the contract is a tolerance: `REFERENCE_TOLERANCE` on every epoch's numbers of these short runs, and the
same decisions.
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
from augsweep.training import group, stacked, train
from augsweep.training.checks import stop_on_non_finite
from augsweep.training.data import load_dataset

pytestmark = pytest.mark.slow  # real trainings or stores: make test and CI run them, make test-fast does not

FLIP = ("flip", (("mode", "horizontal"),))
ROTATION = ("rotation", (("factor", 0.05),))
CONTRAST = ("contrast", (("factor", 0.3),))
SETTINGS = TrainConfig(epochs=3, batch_size=16, learning_rate=0.01)
REFERENCE_TOLERANCE = 1e-5  # |stacked - train.run| of any epoch's loss, val_loss or accuracy over these 3 epochs


@pytest.fixture(scope="module")
def digits():
    runtime.setup(True, False)  # as every sweep trains: deterministic ops, one thread per training
    return load_dataset(DatasetConfig("digits", (8, 8), train_samples=64, val_samples=64), 0)


def alone_in_engine(member, settings=SETTINGS):
    histories, _, _, weights = stacked.run_stacked([member], settings)
    return histories[0], weights[0]


def test_member_k_of_a_stacked_group_equals_it_trained_alone_in_the_engine(digits):
    """Eight members, alternating two augmentation sets; the first, a middle and the last one each trained alone."""
    a = TrialConfig(2, filters=8, dense_units=16, learning_rate=0.01, augmentations=(FLIP, CONTRAST, ROTATION))
    b = replace(a, augmentations=(CONTRAST,))  # members may differ in their augmentations
    members = [group.Member(a if k % 2 else b, digits, sweep_seeds(0, k)) for k in range(8)]
    histories, networks, _, weights = stacked.run_stacked(members, SETTINGS)
    for k in (0, 3, 7):
        history, own = alone_in_engine(members[k])
        assert list(histories[k].columns) == list(history.columns) == group.metric_names(10)
        assert histories[k].equals(history), k
        assert all(np.array_equal(x, y) for x, y in zip(weights[k], own)), k
    assert not histories[0].equals(histories[2])  # the seeds do differ
    net = networks.get(7)  # a member as the lone Keras network, holding its trained weights
    assert net.name == "convnet_d2" and all(np.array_equal(x, y) for x, y in zip(net.get_weights(), weights[7]))


def test_the_engine_agrees_with_the_reference_path_within_its_tolerance_and_decides_alike(digits):
    plain = TrialConfig(1, filters=8, dense_units=16, learning_rate=0.01)
    flipped = replace(plain, augmentations=(FLIP, CONTRAST))
    best = {}
    for config in (plain, flipped):
        seeds = [sweep_seeds(0, r) for r in range(3)]
        histories, _, _, _ = stacked.run_stacked([group.Member(config, digits, s) for s in seeds], SETTINGS)
        reference = [train.run(config, digits, SETTINGS, s).history for s in seeds]
        for mine, ref in zip(histories, reference):
            assert list(mine.columns) == list(ref.columns)
            assert np.max(np.abs(mine.to_numpy() - ref.to_numpy())) <= REFERENCE_TOLERANCE
        best[config] = (np.mean([h["val_loss"].min() for h in histories]),
                        np.mean([h["val_loss"].min() for h in reference]))
    # the same verdict on which configuration is better
    assert (best[plain][0] < best[flipped][0]) == (best[plain][1] < best[flipped][1])


def test_members_keep_their_own_batch_orders(digits):
    config = TrialConfig(1, filters=8, dense_units=16, learning_rate=0.0)  # nothing learns: a loss is its batches'
    seeds = [sweep_seeds(0, r) for r in range(2)]
    members = [group.Member(config, digits, s) for s in seeds]
    batches = stacked._tf_batches(members, SETTINGS)
    first = [np.asarray(y) for _, y in batches]
    assert not all(np.array_equal(y[0], y[1]) for y in first)  # own order seed, own order
    for k, s in enumerate(seeds):  # the very batches of the lone training's first epoch
        train.set_global_seed(s.order)
        alone = train.input_pipeline(digits.x_train, digits.y_train, SETTINGS.batch_size, s.order)
        assert all(np.array_equal(y[k], np.asarray(ly)) for y, (_, ly) in zip(first, alone))
    # and in every epoch as `fit` iterates them: with a learning rate of 0 each epoch's training loss is the mean over
    # that epoch's batches, so another order shows (about 1e-3 here) far above the kernels' rounding
    histories, _, _, _ = stacked.run_stacked(members, SETTINGS)
    for h, s in zip(histories, seeds):
        ref = train.run(config, digits, SETTINGS, s).history
        assert np.max(np.abs(h["loss"].to_numpy() - ref["loss"].to_numpy())) <= REFERENCE_TOLERANCE


def test_a_diverging_member_ends_alone_and_leaves_the_others_untouched(digits):
    config = TrialConfig(1, filters=8, dense_units=16, learning_rate=0.01, augmentations=(FLIP,))
    poisoned = replace(digits, x_train=digits.x_train * 1e30)  # its own data: a NaN loss in its first epoch
    seeds = [sweep_seeds(0, r) for r in range(3)]
    members = [group.Member(config, poisoned if k == 1 else digits, s, [stop_on_non_finite()])
               for k, s in enumerate(seeds)]
    assert stacked.stackable(members, SETTINGS) == ""
    histories, _, _, weights = stacked.run_stacked(members, SETTINGS)
    assert len(histories[1]) == 1 and not np.isfinite(histories[1]["loss"]).all()  # stopped at its epoch 0
    for k in (0, 2):
        history, own = alone_in_engine(group.Member(config, digits, seeds[k], [stop_on_non_finite()]))
        assert histories[k].equals(history) and len(history) == SETTINGS.epochs
        assert all(np.array_equal(x, y) for x, y in zip(weights[k], own))
        assert all(np.isfinite(w).all() for w in weights[k])


def test_until_converged_stops_each_member_at_its_own_epoch(digits):
    settings = replace(SETTINGS, epochs=12, learning_rate=0.05, until_converged=Convergence(patience=1, max_epochs=12))
    config = TrialConfig(1, filters=8, dense_units=16, learning_rate=0.05)
    members = [group.Member(config, digits, sweep_seeds(0, r)) for r in range(3)]
    histories, _, _, weights = stacked.run_stacked(members, settings)
    for k, member in enumerate(members):
        history, own = alone_in_engine(member, settings)
        assert histories[k].equals(history)
        # the weights early stopping restored, not those of the epochs the group trained on after this stop
        assert all(np.array_equal(x, y) for x, y in zip(weights[k], own))
    assert len({len(h) for h in histories}) > 1, "the seeds should stop at different epochs"


def test_what_the_engine_does_not_take(digits):
    config = TrialConfig(1, filters=8, dense_units=16, learning_rate=0.01)
    members = [group.Member(config, digits, sweep_seeds(0, 0)),
               group.Member(replace(config, depth=2), digits, sweep_seeds(0, 1))]
    assert "depths" in stacked.stackable(members, SETTINGS)
    with pytest.raises(ValueError, match="cannot run as one stacked program"):
        stacked.run_stacked(members, SETTINGS)


def test_a_group_trained_stacked_carries_its_engine_and_reproduces_alone_exactly(digits):
    from types import SimpleNamespace

    from augsweep.experiment.schema import ModelConfig
    from augsweep.runs import repeat, reproduce

    config = TrialConfig(1, filters=8, dense_units=16, learning_rate=0.01, augmentations=(FLIP, CONTRAST))
    seeds = [sweep_seeds(0, r) for r in range(3)]
    assert repeat.group_engine(config, [digits] * 3, SETTINGS, seeds, engine="auto") == ("stacked", "")
    engine, why = repeat.group_engine(config, [digits] * 3, SETTINGS, seeds, ModelConfig(base="vgg16"), "auto")
    assert engine == "branches" and "pretrained base" in why
    done = repeat.train_group(config, [digits] * 3, SETTINGS, seeds, engine="stacked")
    assert [d.engine for d in done] == ["stacked"] * 3
    assert list(done[1].history.columns) == ["repeat", "epoch", *group.metric_names(10)]
    assert done[1].model.name == "convnet_d1"  # the lone Keras network, saved as one
    # `--reproduce` of a trial tagged engine=stacked retrains each repeat alone through the engine: bit for bit
    exp = SimpleNamespace(train=SETTINGS, model=ModelConfig())
    again = reproduce._retrain(config, digits, exp, seeds[1], "stacked")
    assert np.array_equal(again, done[1].history["val_loss"].to_numpy(dtype=float))
