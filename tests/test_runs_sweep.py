"""End-to-end sweeps through the CLI's entry function (`sweep.py`'s, in this process: what it answers, not the
process), read back from the real Optuna and MLflow stores."""

from __future__ import annotations

import pytest

from augsweep.experiment import ConfigError, load_experiment
from tests.helpers import read_stores, run_in_process, sweep, tiny_experiment


def _stores(path, mlruns):
    view = read_stores(path, mlruns)
    return view.study, view.client, view.runs


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    path = tmp / "exp.yaml"
    import yaml

    path.write_text(yaml.safe_dump(tiny_experiment(repeats=2, train={"epochs": 2})))
    result = run_in_process("sweep.py", path, "--mlruns", tmp / "mlruns")
    assert result.returncode == 0, result.stderr[-3000:]
    return path, tmp / "mlruns", result


def test_sweep_logs_parent_and_nested_trial_runs(swept):
    path, mlruns, result = swept
    study, client, runs = _stores(path, mlruns)
    parents = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {"study", "sampler", "pruner", "git_commit", "device"} <= set(parent.data.tags)
    assert parent.data.params["dataset"] == "synthetic" and parent.data.params["epochs"] == "2"
    assert "experiment.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)

    trials = {t.user_attrs["mlflow_run_id"]: t for t in study.trials}
    for child in children:
        trial = trials[child.info.run_id]
        assert child.info.status == "FINISHED" and trial.state.name == "COMPLETE"
        assert child.info.run_name.startswith(f"t{trial.number:02d} d")
        params = child.data.params
        assert {"depth", "aug_flip", "aug_contrast", "seed", "seeds_r0", "seeds_r1"} <= set(params)
        assert abs(child.data.metrics["best_val_loss"] - trial.value) < 1e-9
        floats = {k: float(v) for k, v in params.items() if "." in v and v.replace(".", "", 1).isdigit()}
        assert all(v == float(f"{v:.4g}") for v in floats.values()), floats  # rounded for the UI
        for key in ("loss", "val_loss", "binary_accuracy", "val_binary_accuracy", "repeat0/val_loss",
                    "repeat1/val_loss"):
            history = client.get_metric_history(child.info.run_id, key)
            assert [m.step for m in history] == [0, 1], key
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"history.csv", "learning_curves.png"} <= artifacts
        if params["aug_flip"] == "True" or params["aug_contrast"] == "True":
            assert "augmentation_preview.png" in artifacts
    assert "3/3 trials finished" in result.stdout and "make ui" in result.stdout


def test_paired_seeds_are_identical_across_trials(swept):
    path, mlruns, _ = swept
    _, _, runs = _stores(path, mlruns)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len({r.data.params["seeds_r0"] for r in children}) == 1
    assert children[0].data.params["seeds_r0"] != children[0].data.params["seeds_r1"]


def _sweep(path, mlruns, trials=None):
    """The same call `sweep.py` makes, in this process (shares the TensorFlow import)."""
    lines: list[str] = []
    outcome = sweep(load_experiment(path), mlruns, trials=trials, echo=lines.append)
    return outcome, "\n".join(lines)


def test_resume_continues_to_the_total_budget(tmp_path, write_experiment):
    path = write_experiment(tiny_experiment(trials=2, search_space={"depth": 1, "augmentations": {"flip": None}}))
    mlruns = tmp_path / "mlruns"
    first, _ = _sweep(path, mlruns)
    assert (first.finished, first.ran_now) == (2, 2)
    again, text = _sweep(path, mlruns, trials=3)
    assert "2/3 trials finished, 1 to go" in text and again.ran_now == 1
    done, text = _sweep(path, mlruns, trials=3)
    assert "3/3 trials finished, 0 to go" in text and done.ran_now == 0
    study, _, runs = _stores(path, mlruns)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert len([r for r in runs if r.data.tags.get("kind") == "sweep"]) == 1  # one parent, reopened
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4


def test_changed_experiment_is_refused_on_resume_naming_the_keys(tmp_path, write_experiment):
    import optuna

    from augsweep.stores.records import ATTR_EXPERIMENT

    path = write_experiment(tiny_experiment(trials=1, search_space={"depth": 1}))
    mlruns = tmp_path / "mlruns"
    _sweep(path, mlruns)
    write_experiment(tiny_experiment(trials=1, search_space={"depth": 2}))
    with pytest.raises(ConfigError, match="was created from a different experiment.*--study-name"):
        _sweep(path, mlruns)
    write_experiment(tiny_experiment(trials=1, search_space={"depth": 1}, train={"epochs": 15}))
    with pytest.raises(ConfigError) as refused:
        _sweep(path, mlruns)
    message = str(refused.value)
    assert "different experiment (train.epochs: 2 → 15)." in message and "\n" not in message, message
    # A study that stored only the hash (written before the resolved experiment was) gets the general wording.
    study = optuna.load_study(study_name=load_experiment(path).name, storage=f"sqlite:///{mlruns}/optuna.db")
    study.set_user_attr(ATTR_EXPERIMENT, None)
    with pytest.raises(ConfigError, match=r"\(dataset, search space, training or seeds changed\)"):
        _sweep(path, mlruns)


def _old_identity(path, *late_keys) -> str:
    """The identity as the code before the augmentations' revisions (and before `late_keys`) computed it, written
    here from its definition: the resolved experiment without the budget keys, hashed as sorted YAML."""
    import copy
    import hashlib

    import yaml

    old = copy.deepcopy(load_experiment(path).resolved())
    for key in ("trials", "max_consecutive_failures", "ablation", "stop", "equivalence_margin"):
        old.pop(key, None)
    for key in late_keys:
        old["train"].pop(key)
    return hashlib.sha256(yaml.safe_dump(old, sort_keys=True).encode()).hexdigest()


def _store_identity(path, mlruns, value):
    import optuna

    from augsweep.stores.study import ATTR_EXPERIMENT_HASH

    study = optuna.load_study(study_name=load_experiment(path).name, storage=f"sqlite:///{mlruns}/optuna.db")
    study.set_user_attr(ATTR_EXPERIMENT_HASH, value)


def test_a_study_created_before_a_late_key_existed_resumes(tmp_path, write_experiment):
    """A study whose stored hash is the one computed before `train.deterministic` and `train.reuse_compiled`
    existed (both at their defaults now) resumes instead of being refused as another experiment; so does one
    from before the augmentations' revisions, when its space holds none that changed meaning (flip here)."""
    path = write_experiment(tiny_experiment(trials=1, search_space={"depth": 1, "augmentations": {"flip": None}}))
    mlruns = tmp_path / "mlruns"
    _sweep(path, mlruns)
    _store_identity(path, mlruns, _old_identity(path, "deterministic", "reuse_compiled"))
    done, text = _sweep(path, mlruns, trials=2)
    assert done.finished == 2 and done.ran_now == 1


def test_a_study_from_before_contrast_changed_meaning_is_refused(tmp_path, write_experiment):
    """Contrast drew its factor from [1, 1 + f] before: such a study measured another augmentation, so resuming it
    would mix two meanings under one name. The refusal says why."""
    path = write_experiment(tiny_experiment(trials=1, search_space={"depth": 1}))  # flip and contrast
    mlruns = tmp_path / "mlruns"
    _sweep(path, mlruns)
    _store_identity(path, mlruns, _old_identity(path))
    with pytest.raises(ConfigError, match=r"was created before contrast's meaning changed: its factor is now drawn "
                                          r"from \[1 - f, 1 \+ f\].*not resumed.*--study-name"):
        _sweep(path, mlruns, trials=2)


def test_sequential_sweep_is_deterministic(tmp_path, write_experiment):
    """Same file, same seed, same machine: the same trial parameters and values (1e-6 on CPU)."""
    path = write_experiment(tiny_experiment(trials=3, search_space={
        "depth": {"low": 1, "high": 2}, "learning_rate": {"low": 0.001, "high": 0.01},
        "augmentations": {"flip": None, "contrast": {"factor": [0.1, 0.5]}}}))
    _sweep(path, tmp_path / "a")
    _sweep(path, tmp_path / "b")
    (a, _, _), (b, _, _) = _stores(path, tmp_path / "a"), _stores(path, tmp_path / "b")
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert len({tuple(sorted(t.params.items())) for t in a.trials}) == 3  # three different draws
    for x, y in zip(a.trials, b.trials):
        assert x.state.name == y.state.name == "COMPLETE"
        assert abs(x.value - y.value) <= 1e-6, (x.number, x.value, y.value)
