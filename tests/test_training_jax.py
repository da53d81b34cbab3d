"""The backend-neutral path end to end under JAX: one real trial trained by Keras on JAX, logged to MLflow."""

from __future__ import annotations

import importlib.util

import pytest

from tests.helpers import jax_without_tensorflow, read_stores, run_cli, tiny_experiment

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                reason="JAX is not installed (the test extra installs jax[cpu])")


def test_one_trial_under_jax_is_trained_and_logged(tmp_path, write_experiment):
    """A sweep process on JAX where TensorFlow cannot be imported (as on a GPU machine with JAX only): the
    data pipeline, the seeds and the tracking need no TensorFlow."""
    path = write_experiment(tiny_experiment(name="jax", trials=1, repeats=2,
                                            search_space={"depth": 1, "augmentations": {"flip": None,
                                                                                        "contrast": None}}))
    result = run_cli("sweep.py", path, "--mlruns", tmp_path / "m", env=jax_without_tensorflow(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    view = read_stores(path, tmp_path / "m")
    assert [t.state.name for t in view.trials] == ["COMPLETE"]
    parent = next(r for r in view.runs if r.data.tags.get("kind") == "sweep")
    assert parent.data.tags["backend"] == "jax"
    trial = view.by_id[view.trials[0].user_attrs["mlflow_run_id"]]
    assert trial.info.status == "FINISHED"
    history = view.client.get_metric_history(trial.info.run_id, "val_loss")
    assert len(history) == 2 and all(m.value == m.value for m in history)  # 2 epochs, finite
