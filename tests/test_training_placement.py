"""Augmentation placement: the rule, and that moving layers into tf.data changes nothing but speed."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient

from augsweep.experiment import DatasetConfig, TrainConfig, load_experiment
from augsweep.experiment.seeding import repeat_seeds
from augsweep.experiment.space import TrialConfig
from augsweep.stores.study import resolve_stores
from augsweep.training import placement, train
from augsweep.training.data import load_dataset
from tests.helpers import sweep, tiny_experiment

FLIP_ROTATION = (("flip", (("mode", "horizontal"),)), ("rotation", (("factor", 0.2),)))


def test_geometric_layers_leave_the_model_only_when_xla_is_wanted():
    names = ["flip", "rotation", "warp"]
    cpu = placement.plan(names, backend="tensorflow", accelerator=False)
    assert cpu.in_model == ("flip", "rotation", "warp") and cpu.label == "model"
    gpu = placement.plan(names, backend="tensorflow", accelerator=True)
    assert gpu.in_model == ("flip",) and gpu.in_data == ("rotation", "warp") and gpu.label == "data:rotation,warp"
    forced = placement.plan(names, backend="tensorflow", accelerator=False, jit_compile="true")
    assert forced.in_data == ("rotation", "warp")
    assert placement.plan(names, backend="tensorflow", accelerator=True, jit_compile="false").label == "model"
    assert placement.plan(["flip", "contrast"], backend="tensorflow", accelerator=True).label == "model"
    assert placement.plan(names, backend="jax", accelerator=True).label == "model"
    assert placement.plan(names, backend="tensorflow", accelerator=False, placement="data").label == "data"
    with pytest.raises(ValueError, match="placement must be one of"):
        placement.plan(names, backend="tensorflow", accelerator=False, placement="gpu")


def test_data_placement_trains_the_same_numbers_as_in_model_placement():
    ds = load_dataset(DatasetConfig("synthetic", (16, 16), samples=96), 0)
    cfg = TrialConfig(1, learning_rate=0.003, augmentations=FLIP_ROTATION)
    tc = TrainConfig(epochs=2, batch_size=32)
    runs = {p: train.run(cfg, ds, tc, repeat_seeds(0, 0), where=p) for p in ("model", "data")}
    again = train.run(cfg, ds, tc, repeat_seeds(0, 0), where="data")
    assert runs["model"].placement == "model" and runs["data"].placement == "data"
    assert [layer.name for layer in runs["data"].model.layers if layer.name.startswith("aug_")] == []
    np.testing.assert_allclose(runs["data"].history.to_numpy(), again.history.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(runs["data"].history.to_numpy(), runs["model"].history.to_numpy(), atol=1e-5)
    plain = train.run(TrialConfig(1, learning_rate=0.003), ds, tc, repeat_seeds(0, 0))
    assert not np.allclose(plain.history["loss"].to_numpy(), runs["data"].history["loss"].to_numpy())


def test_trial_runs_record_placement_precision_and_xla(tmp_path, write_experiment):
    path = write_experiment(tiny_experiment(
        name="tags", trials=1, search_space={"depth": 1, "augmentations": {"rotation": {"factor": 0.1}}}))
    exp = load_experiment(path)
    sweep(exp, tmp_path / "m", echo=lambda line: None)
    stores = resolve_stores(exp, tmp_path / "m")
    client = MlflowClient(stores.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(exp.name).experiment_id], "tags.kind = 'trial'")
    tags = runs[0].data.tags
    assert tags["aug_placement"] in ("model", "data:rotation")
    assert tags["dtype_policy"] == "float32" and tags["jit_compile"] in ("true", "false")
    assert tags["device"]
