"""The Python API end to end on one tiny sweep: `load_experiment`, `sweep`, `report` (answer, effects, best,
augmentation block, notebook display), the best model registered in MLflow (that it loads and predicts in a fresh
process, from any folder, is tests/test_report_export_standalone.py's, on the same shared sweep), the answer on the
experiment's page, the block on the parent run; and a cheap `import augsweep`."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

import augsweep
from augsweep.stores.registry import NOTE_TAG, SOURCE_TAG
from tests.helpers import tiny_experiment


@pytest.fixture
def done(tiny_report):
    """One sweep and its report through the API (conftest's `tiny_report`, shared with other files)."""
    return tiny_report


def test_load_experiment_from_a_dict_a_path_and_bad_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = augsweep.load_experiment(tiny_experiment(name="from-dict"))
    assert exp.name == "from-dict" and (tmp_path / ".augsweep" / "from-dict.yaml").is_file()
    assert augsweep.load_experiment(tmp_path / ".augsweep" / "from-dict.yaml").sha256() == exp.sha256()
    with pytest.raises(augsweep.UserError, match="file not found"):
        augsweep.load_experiment(tmp_path / "missing.yaml")
    with pytest.raises(augsweep.UserError, match="rotation.factor must be in"):
        augsweep.load_experiment(tiny_experiment(search_space={"augmentations": {"rotation": {"factor": 1.7}}}))


def test_sweep_refuses_a_bad_worker_count_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = augsweep.load_experiment(tiny_experiment(name="bad-workers"))
    for bad in (0, "many", True):
        with pytest.raises(augsweep.UserError, match=r"workers must be an integer in \[1, \d+\] .* or auto. Received"):
            augsweep.sweep(exp, mlruns=tmp_path / "m", progress=False, workers=bad)
    assert not (tmp_path / "m").exists()


# Arguments the API took (and the command line refused), or answered with a TypeError/AttributeError from deep
# inside: each raises UserError, one line, before anything is read or written.
BAD_API_CALLS = [
    ("sweep", {"study_name": "../x"}), ("sweep", {"study_name": "/tmp/anywhere"}), ("sweep", {"study_name": 5}),
    ("sweep", {"trials": float("nan")}), ("sweep", {"trials": 2.5}), ("sweep", {"trials": "3"}),
    ("sweep", {"trials": 10 ** 30}), ("sweep", {"trials": True}), ("sweep", {"storage": 5}),
    ("sweep", {"tracking_uri": ["http://h"]}), ("sweep", {"mlruns": None}), ("sweep", {"mlruns": ""}),
    ("sweep", {"workers": 10 ** 6}), ("sweep", {"progress": "yes"}), ("sweep", {"bogus": 1}),
    ("sweep", {"storage": "sqlite:///:memory:", "workers": 2}),
    ("report", {"study_name": "../x"}), ("report", {"out": ""}), ("report", {"out": 5}), ("report", {"mlruns": 3}),
    ("report", {"storage": "postgresql://u:a/b@h/db"}),
]


@pytest.mark.parametrize("function, kwargs", BAD_API_CALLS, ids=[f"{f}-{sorted(k)}-{list(k.values())}"[:60]
                                                                   for f, k in BAD_API_CALLS])
def test_bad_api_arguments_raise_user_error_and_write_nothing(tmp_path, monkeypatch, function, kwargs):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "exp.yaml"
    path.write_text(__import__("yaml").safe_dump(tiny_experiment(name="api-args")))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(augsweep.UserError) as e:
        getattr(augsweep, function)(path, **({"mlruns": tmp_path / "m"} | kwargs))
    assert "\n" not in str(e.value) and len(str(e.value)) < 400
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no store, no report, no .augsweep/


@pytest.mark.parametrize("exp", [None, 5, ["exp.yaml"], b"exp.yaml", ""])
def test_an_experiment_of_the_wrong_type_is_a_user_error(exp):
    for call in (augsweep.load_experiment, augsweep.sweep, augsweep.report):
        with pytest.raises(augsweep.UserError, match="experiment must be a YAML file path"):
            call(exp)
    with pytest.raises(augsweep.UserError, match="missing a required argument"):
        augsweep.sweep()


def test_sweep_returns_the_study(done):
    _, exp, study, _, _ = done
    assert (study.name, study.finished, study.budget, study.ran_now) == ("api-tiny", 4, 4, 4)
    assert study.best and study.best[0][1] <= study.best[-1][1]
    assert "api-tiny" in study._repr_html_()


def test_report_gives_answer_effects_best_and_block(done):
    folder, exp, _, rep, _ = done
    assert "turning each augmentation on changes the best validation loss" in rep.answer
    pd.testing.assert_frame_equal(rep.effects.reset_index(drop=True), pd.read_csv(folder / "report" / "effects.csv"),
                                  check_dtype=False, atol=1e-4)
    assert rep.best is not None and rep.best.which in ("best", "best without hurts")
    block = rep.augmentation_block()
    assert block.name == "augmentation"
    x = np.full((2, 8, 8, 1), 0.5, np.float32)
    np.testing.assert_array_equal(np.asarray(block(x, training=False)), x)
    html = rep._repr_html_()
    assert "data:image/png;base64," in html and "turning each augmentation on" in html
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert not re.search(r"\bnan\b", text) and "`" not in text  # numbers are numbers; Markdown rendered
    # Next: names what exists, with the standing of the recommendation against no augmentation
    steps = "\n".join(rep.next_steps)
    assert "`augmentation.py` beside this report" in steps and "no augmentation" in steps
    assert "mlflow.set_tracking_uri(" in steps and "models:/api-tiny-best/1" in steps
    assert {"augmentation.py", "augmentation.keras"} <= {p.name for p in (folder / "report").iterdir()}


def test_mlflow_holds_the_answer_the_block_and_one_registered_version(done):
    folder, exp, _, rep, again = done
    client = MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(exp.name)
    note = experiment.tags[NOTE_TAG]
    assert rep.answer.split("\n\n")[0] in note and "| augmentation" in note and "verdict" in note
    versions = client.search_model_versions("name='api-tiny-best'")
    assert len(versions) == 1  # the second report found the same best model: no new version
    assert again.model_version.version == rep.model_version.version == versions[0].version
    assert versions[0].tags[SOURCE_TAG].startswith(rep.best.run_id)
    parent = client.get_run(rep.model_version.run_id)
    assert parent.data.tags.get("mlflow.parentRunId") is None  # the sweep's parent run holds them
    report_files = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/effects.csv", "report/augmentation.py",
            "report/augmentation.keras"} <= report_files


def test_import_augsweep_is_cheap():
    code = ("import sys, augsweep; augsweep.UserError; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'mlflow', 'optuna', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_skipped_publishing_says_why_in_the_cli_and_the_api(done, monkeypatch, capsys):
    """Stores older than model.keras: no block, no registered model, and the report says so (it used to be
    silent: the reason was only in `Published.notes`)."""
    from augsweep.cli import report_main
    from augsweep.stores import registry

    folder, exp, *_ = done
    monkeypatch.chdir(folder)
    monkeypatch.setattr(registry, "download_model", lambda *a, **k: None)  # what a run without model.keras gives
    rep = augsweep.report(exp, mlruns=folder / "mlruns", out=folder / "old-api")
    assert rep.model_version is None and len(rep.notes) == 1 and "holds no model.keras" in rep.notes[0]
    assert "note:</b>" in rep._repr_html_() and "holds no model.keras" in rep._repr_html_()
    code = report_main([str(folder / ".augsweep" / "api-tiny.yaml"), "--mlruns", str(folder / "mlruns"),
                        "--out", str(folder / "old-cli")])
    out = capsys.readouterr().out
    assert code == 0
    assert [line for line in out.splitlines() if "model.keras" in line] == [f"note: {rep.notes[0]}"]
    assert not (folder / "old-cli" / "augmentation.keras").exists()
