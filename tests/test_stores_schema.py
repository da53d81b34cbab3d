"""An embedded store whose mlflow.db another MLflow version wrote is refused in one line (exit 2), untouched, with
a command that works as printed."""

from __future__ import annotations

import hashlib
import shlex
import sqlite3
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from augsweep import cli
from augsweep.experiment.schema import ConfigError
from augsweep.stores import tracking
from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # real trainings or stores: make test and CI run them, make test-fast does not

def _store(mlruns: Path) -> Path:
    """A real MLflow SQLite store at the current schema."""
    mlruns.mkdir(parents=True)
    db = mlruns / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


def _downgrade_one(db: Path) -> str:
    """Alembic-downgrade the store by one revision (the schema an older MLflow wrote); its revision."""
    import sqlalchemy
    from alembic import command
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision

    uri = f"sqlite:///{db}"
    cfg = _get_alembic_config(uri)
    older = ScriptDirectory.from_config(cfg).get_revision(_get_latest_schema_revision()).down_revision
    with sqlalchemy.create_engine(uri).begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, older)
    return older


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_older_schema_is_refused_untouched_and_the_printed_upgrade_works(tmp_path, capsys):
    db = _store(tmp_path / "mlruns")
    older = _downgrade_one(db)
    before = _digest(db)
    code = cli.report_main([str(ROOT / "experiments" / "default.yaml"), "--mlruns", str(tmp_path / "mlruns"),
                            "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and str(db) in err[0] and older in err[0] and "older MLflow" in err[0], err
    assert _digest(db) == before and not (tmp_path / "out").exists()
    printed = err[0].split("`")[1]
    done = subprocess.run(shlex.split(printed), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    tracking._SCHEMA_CHECKED.clear()
    tracking.check_schema(f"sqlite:///{db}")  # upgraded: accepted


def test_a_newer_schema_is_left_to_the_mlflow_that_wrote_it(tmp_path):
    db = _store(tmp_path / "mlruns")
    with sqlite3.connect(db) as c:
        c.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    with pytest.raises(ConfigError) as e:
        tracking.check_schema(f"sqlite:///{db}")
    assert "newer MLflow" in str(e.value) and "ffffffffffff" in str(e.value)
