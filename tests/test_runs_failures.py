"""Bad trials never take the sweep down: diverging, raising and repeatedly failing trials."""

from __future__ import annotations

import math

import pytest

from augsweep import augment
from augsweep.experiment import load_experiment
from augsweep.runs.sweep import SweepAborted
from tests.helpers import read_stores, sweep, tiny_experiment


def _runs(path_or_exp, mlruns):
    view = read_stores(path_or_exp, mlruns)
    return view.study, view.client, view.by_id


def test_diverging_trial_is_scored_not_dropped(tmp_path, write_experiment):
    # A divergence is information about the configuration: the trial completes, each diverged repeat scored
    # by what it reached before diverging, or ln K (guessing) when no epoch was finite; dropping it would
    # bias the effect of whatever made it diverge toward "harmless".
    path = write_experiment(tiny_experiment(
        name="nan", trials=3, max_consecutive_failures=10,
        search_space={"depth": 1, "learning_rate": [1.0e30, 0.003], "augmentations": {}}))
    lines = []
    outcome = sweep(load_experiment(path), tmp_path / "m", echo=lines.append)
    study, _, runs = _runs(path, tmp_path / "m")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3 and outcome.finished == 3
    diverged = [t for t in study.trials if t.params["learning_rate"] == 1.0e30]
    assert diverged, "the planted learning rate was never drawn"
    for t in study.trials:
        run = runs[t.user_attrs["mlflow_run_id"]]
        assert run.info.status == "FINISHED"
        rep = t.user_attrs["repeats"][0]
        if t in diverged:
            assert rep["diverged_epoch"] == 0 and rep["best_val_loss"] == pytest.approx(math.log(2))
            assert t.value == pytest.approx(math.log(2)) and run.data.tags["diverged_repeats"] == "1"
        else:
            assert "diverged_epoch" not in rep and "diverged_repeats" not in run.data.tags


def test_raising_augmentation_fails_with_traceback_artifact(tmp_path, write_experiment):
    def explode(params, seed):
        raise RuntimeError("planted failure in the augmentation builder")

    augment.register(augment.AugmentationSpec("explode", {}, explode))
    try:
        path = write_experiment(tiny_experiment(
            name="explode", trials=2, max_consecutive_failures=10,
            search_space={"depth": 1, "augmentations": {"explode": None}}))
        exp = load_experiment(path)
        sweep(exp, tmp_path / "m", echo=lambda line: None)
    finally:
        augment.unregister("explode")
    study, client, runs = _runs(exp, tmp_path / "m")
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed and all(t.params["aug_explode"] for t in failed)
    assert all(t.state.name == "COMPLETE" for t in study.trials if not t.params["aug_explode"])
    run_id = failed[0].user_attrs["mlflow_run_id"]
    assert runs[run_id].info.status == "FAILED"
    assert "RuntimeError: planted failure" in runs[run_id].data.tags["failure_reason"]
    tb = client.download_artifacts(run_id, "traceback.txt", str(tmp_path))
    assert "Traceback" in open(tb).read() and "explode" in open(tb).read()


def test_consecutive_failures_stop_the_sweep(tmp_path, write_experiment):
    # Trials that never reach a finite epoch are scored, but in a row they stop the sweep like failures.
    path = write_experiment(tiny_experiment(
        name="broken", trials=5, max_consecutive_failures=2,
        search_space={"depth": 1, "learning_rate": 1.0e30, "augmentations": {}}))
    with pytest.raises(SweepAborted, match="2 consecutive trials failed; last reason: non-finite loss at epoch 0"):
        sweep(load_experiment(path), tmp_path / "m", echo=lambda line: None)
    study, _, runs = _runs(path, tmp_path / "m")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert all(t.user_attrs["repeats"][0]["best_epoch"] == -1 for t in study.trials)
