"""Reuse of a compiled model across repeats (`training.reuse`): the same numbers as a fresh build, and a
new magnitude never runs on a model traced with the old one."""

from __future__ import annotations

import numpy as np
import pytest

from augsweep.experiment import DatasetConfig, TrainConfig
from augsweep.experiment.schema import ConfigError
from augsweep.experiment.seeding import repeat_seeds
from augsweep.experiment.space import TrialConfig
from augsweep.training import reuse, train
from augsweep.training.data import load_dataset
from tests.helpers import experiment, tiny_experiment

REUSE, FRESH = TrainConfig(epochs=3, batch_size=32), TrainConfig(epochs=3, batch_size=32, reuse_compiled="false")


def config(magnitude: float, learning_rate: float = 0.003) -> TrialConfig:
    """A depth-2 convnet with colour, geometric and crop augmentations, all of size `magnitude`."""
    return TrialConfig(2, filters=4, dense_units=8, learning_rate=learning_rate, augmentations=(
        ("contrast", (("factor", magnitude),)), ("rotation", (("factor", magnitude),)),
        ("warp", (("factor", magnitude), ("kind", "translation"))), ("crop", (("factor", magnitude),))))


@pytest.fixture(scope="module")
def data():
    return load_dataset(DatasetConfig("synthetic", (16, 16), samples=96), 0)


@pytest.mark.slow  # three real trainings
def test_a_reused_model_trains_the_same_history_as_a_fresh_build(data):
    """At one magnitude: every magnitude takes the same path (a model is reused only at its own magnitude, the
    next test); 0.3 is the larger one, where a stale augmentation state would show the most."""
    magnitude = 0.3
    first = train.run(config(magnitude), data, REUSE, repeat_seeds(0, 0))
    # Another repeat (other seeds) and another learning rate, on the model the first one trained.
    reused = train.run(config(magnitude, 0.01), data, REUSE, repeat_seeds(0, 1))
    assert reused.model is first.model
    fresh = train.run(config(magnitude, 0.01), data, FRESH, repeat_seeds(0, 1))
    assert fresh.model is not first.model and reuse.cached_model() is None
    assert list(reused.history.columns) == list(fresh.history.columns) and len(fresh.history) == 3
    np.testing.assert_allclose(reused.history.to_numpy(), fresh.history.to_numpy(), rtol=0, atol=1e-6)


def test_a_new_magnitude_or_structure_builds_afresh(data):
    a = train.run(config(0.1), data, REUSE, repeat_seeds(0, 0))
    b = train.run(config(0.3), data, REUSE, repeat_seeds(0, 0))
    assert b.model is not a.model  # the factor is baked into the traced step: never reused across magnitudes
    assert {layer.name: getattr(layer, "factor", None) for layer in b.model.layers}["aug_crop"] == 0.3
    c = train.run(TrialConfig(1, filters=4, dense_units=8, learning_rate=0.003), data, REUSE, repeat_seeds(0, 0))
    assert c.model is not b.model
    d = train.run(TrialConfig(1, filters=4, dense_units=8, learning_rate=0.003), data, REUSE, repeat_seeds(0, 1))
    assert d.model is c.model
    assert not np.allclose(d.history["loss"].to_numpy(), c.history["loss"].to_numpy())  # other seeds, other run


def test_the_setting_is_read_and_auto_reuses_only_where_exact(write_experiment):
    assert reuse.enabled("auto", "tensorflow") and not reuse.enabled("auto", "jax")
    assert reuse.enabled("true", "jax") and not reuse.enabled("false", "tensorflow")
    assert experiment(write_experiment(tiny_experiment())).train.reuse_compiled == "auto"
    assert experiment(write_experiment(tiny_experiment(train={"epochs": 1, "reuse_compiled": False}))
                      ).train.reuse_compiled == "false"
    with pytest.raises(ConfigError, match="train.reuse_compiled"):
        experiment(write_experiment(tiny_experiment(train={"epochs": 1, "reuse_compiled": "sometimes"})))


def test_mixed_precision_survives_the_session_reset(data):
    # keras.backend.clear_session() resets the global dtype policy; a fresh build must keep the run's.
    import keras

    from augsweep import runtime

    runtime.set_precision(True)
    try:
        built = train.run(config(0.1), data, TrainConfig(epochs=1, batch_size=32, reuse_compiled="false"),
                          repeat_seeds(0, 0))  # a build, then one epoch: the policy is the build's
        conv = next(layer for layer in built.model.layers if "conv" in layer.name)
        assert conv.dtype_policy.name.startswith("mixed_")
    finally:
        keras.mixed_precision.set_global_policy("float32")
