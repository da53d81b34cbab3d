"""A worker whose PostgreSQL goes away mid-sweep ends within seconds, with one line first (the traceback in the log
file the line names), and the resume after the server is back finishes the budget exactly.

The test has its own PostgreSQL (stopping the session's would break the other cluster tests); the MLflow store is
an SQLite file, so the only thing lost is the study's database."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tests.helpers import cli_command, run_in_process, tiny_experiment

SECONDS_TO_END = 20  # a lost database ends a worker within this (it used to take 2-3 minutes)


@pytest.fixture
def postgres():
    """A PostgreSQL of this test's own (no MLflow server), stopped and removed afterwards."""
    from augsweep.serve.process import free_port
    from augsweep.serve.servers import Postgres
    from tests.cluster import postgres_available

    if not postgres_available():
        if os.environ.get("AUGSWEEP_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed")
    root = Path(tempfile.mkdtemp(prefix="augsweep-lostdb-"))
    root.chmod(0o755)  # the postgres user runs the server and must reach its data folder
    pg = Postgres(root, free_port(), durable=False)
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def worker(path: Path, cwd: Path, storage: str, pg) -> subprocess.Popen:
    command, extra = cli_command("worker")
    env = {**pg.env(), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "AUGSWEEP_NO_BROWSER": "1", **extra}
    return subprocess.Popen([*command, str(path), "--storage", storage, "--tracking-uri",
                             f"sqlite:///{cwd / 'mlflow.db'}"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_lost_postgresql_ends_a_worker_within_seconds_in_one_line_and_the_resume_finishes(postgres, tmp_path):
    path = tmp_path / "lostdb.yaml"
    path.write_text(yaml.safe_dump(tiny_experiment(name="lostdb", trials=4, train={"epochs": 3},
                                                   dataset={"samples": 192})))
    storage = postgres.url()
    saved = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = str(postgres.pgpass.resolve())  # this process reads the study too
    try:
        proc = worker(path, tmp_path, storage, postgres)
        watch = optuna.storages.get_storage(storage)  # one client for every poll, as a watching process holds
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:  # mid-sweep: one trial done, three to go
            try:
                trials = optuna.load_study(study_name="lostdb", storage=watch).get_trials(deepcopy=False)
            except KeyError:  # the study is not created yet
                trials = []
            if any(t.state.name == "COMPLETE" for t in trials):
                break
            time.sleep(0.3)
        assert proc.poll() is None, proc.communicate()
        postgres.stop()
        lost = time.monotonic()
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        took = time.monotonic() - lost
        print(f"a lost PostgreSQL ended the worker in {took:.1f} s")
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode not in (0, None) and took < SECONDS_TO_END, (proc.returncode, took, err[-3000:])
        assert lines and lines[0].startswith("error: database lost ("), err[-3000:]
        assert "resume with: " in lines[0] and "full traceback in " in lines[0], lines[0]
        assert "Traceback" not in err, err[-3000:]
        log = Path(lines[0].rsplit("full traceback in ", 1)[1].rstrip(")"))
        assert log.is_file() and "Traceback" in log.read_text()

        # The server is back: the same command resumes and finishes the budget exactly (what it answers and
        # writes; this process runs it through the entry function the command calls).
        postgres.start()
        resumed = run_in_process("worker", path, "--storage", storage, "--tracking-uri",
                                 f"sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        study = optuna.load_study(study_name="lostdb", storage=storage)
        assert sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)) == 4
        assert not [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"]
    finally:
        if saved is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = saved
