"""Nothing lost, nothing leaked: the report writes and uploads only its own files, a lost or
0-byte study store is refused instead of silently restarted, store paths that name files exit 2.

One tiny sweep (one trial, one epoch) is made per module and copied for each test that damages it; the
commands run in-process through the real CLI entry points (`report_main`, `sweep_main`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from augsweep.cli import report_main, sweep_main
from augsweep.stores.run_files import forget_artifact_repositories
from tests.helpers import copy_stores, read_stores, sweep, tiny_experiment


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """(experiment path, mlruns) of a finished one-trial sweep; never modified (copy it first)."""
    import yaml

    root = tmp_path_factory.mktemp("swept")
    path = root / "integrity.yaml"
    path.write_text(yaml.safe_dump(tiny_experiment(name="integrity", trials=1, train={"epochs": 1},
                                                   dataset={"image_size": [8, 8], "samples": 48})))
    sweep(path, root / "mlruns")
    return path, root / "mlruns"


@pytest.fixture
def copy(swept, tmp_path):
    """A copy of `swept`'s stores that are stores of their own (its runs read and write its own artifacts), and
    MLflow's per-process cache of artifact folders by run id emptied (the copy's runs have the original's ids)."""
    path, mlruns = swept
    copy_stores(mlruns, tmp_path / "mlruns")
    forget_artifact_repositories()
    return path, tmp_path / "mlruns"


def _one_line_exit_2(code, capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _content(folder):
    """What the stores hold, logically: each SQLite database's SQL dump and every other file with its size.
    SQLite's own -wal/-shm files are left out: a reader creates them, and they stay while any connection of
    this process is open (whether one is depends on when the garbage collector ran)."""
    import sqlite3

    out = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.endswith(("-wal", "-shm")):
            continue
        if p.suffix == ".db" and p.stat().st_size:
            with sqlite3.connect(f"file:{p}?mode=ro", uri=True) as db:
                out.append((p.name, tuple(db.iterdump())))
        else:
            out.append((str(p.relative_to(folder)), p.stat().st_size))
    return out


def test_report_uploads_only_its_own_files_never_the_rest_of_out(copy, tmp_path, capsys):
    """A `pgpass` (or anything else) in --out stays out of the run's `report/` artifacts: only the report's own
    files are uploaded."""
    path, mlruns = copy
    out = tmp_path / "out"
    out.mkdir()
    (out / "pgpass").write_text("*:*:*:augsweep:hunter22\n")
    (out / "notes").mkdir()
    (out / "notes" / "x.txt").write_text("mine")
    assert report_main([str(path), "--mlruns", str(mlruns), "--out", str(out)]) == 0
    view = read_stores(path, mlruns)
    parent = view.study.user_attrs["mlflow_parent_run_id"]
    uploaded = {f.path for f in MlflowClient(view.client.tracking_uri).list_artifacts(parent, "report")}
    assert "report/report.md" in uploaded and "report/effects.csv" in uploaded
    assert not any("pgpass" in p or "notes" in p for p in uploaded), uploaded
    assert (out / "pgpass").read_text() == "*:*:*:augsweep:hunter22\n"


@pytest.mark.parametrize("where", ["equal", "contains", "inside"])
def test_report_refuses_an_out_that_is_contains_or_lies_in_the_stores(copy, capsys, monkeypatch, where):
    """An --out that is, contains or lies in the stores is refused (exit 2) and nothing in them changes: `--out .`
    beside mlruns/ would otherwise copy the stores into themselves."""
    path, mlruns = copy
    before = _content(mlruns)
    out = {"equal": mlruns, "contains": mlruns.parent, "inside": mlruns / "report"}[where]
    monkeypatch.chdir(mlruns.parent)
    line = _one_line_exit_2(report_main([str(path), "--mlruns", str(mlruns), "--out", str(out)]), capsys)
    assert "--out" in line and "stores" in line and str(out) in line
    assert _content(mlruns) == before and not (mlruns.parent / "report.md").exists()


@pytest.mark.parametrize("option", ["--out", "--mlruns"])
def test_out_or_mlruns_naming_a_file_exits_2(copy, tmp_path, capsys, option):
    """`--out FILE` / `--mlruns FILE` exits 2 with one line, not a traceback."""
    path, mlruns = copy
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    args = ["--mlruns", str(mlruns), "--out", str(a_file)] if option == "--out" else ["--mlruns", str(a_file)]
    line = _one_line_exit_2(report_main([str(path), *args]), capsys)
    assert option in line and "is a file" in line and str(a_file) in line
    if option == "--mlruns":
        line = _one_line_exit_2(sweep_main([str(path), "--mlruns", str(a_file / "below")]), capsys)
        assert "--mlruns" in line and str(a_file) in line
    assert a_file.read_text() == "x"


@pytest.mark.parametrize("main", [report_main, sweep_main], ids=["report", "sweep"])
def test_a_0_byte_optuna_db_is_refused_and_never_written(copy, capsys, main):
    """A 0-byte optuna.db is refused by the report and the sweep, and never written: no empty schema is created in
    it and no sweep starts again at 0 trials."""
    path, mlruns = copy
    (mlruns / "optuna.db").write_bytes(b"")
    for extra in ("-wal", "-shm"):
        (mlruns / f"optuna.db{extra}").unlink(missing_ok=True)
    line = _one_line_exit_2(main([str(path), "--mlruns", str(mlruns)]), capsys)
    assert "optuna.db" in line and "0 bytes" in line
    assert (mlruns / "optuna.db").stat().st_size == 0 and not (mlruns / "optuna.db-wal").exists()


def test_a_lost_study_store_is_not_restarted_while_mlflow_holds_its_runs(copy, capsys):
    """A missing optuna.db beside an MLflow store that holds the study's runs is refused: the study is not started
    again."""
    path, mlruns = copy
    for f in mlruns.glob("optuna.db*"):
        f.unlink()
    runs_before = len(read_stores_runs(path, mlruns))
    line = _one_line_exit_2(sweep_main([str(path), "--mlruns", str(mlruns)]), capsys)
    assert "no study 'integrity'" in line and "--study-name" in line
    assert not (mlruns / "optuna.db").exists()  # refused before the file is created
    assert len(read_stores_runs(path, mlruns)) == runs_before


def read_stores_runs(path, mlruns):
    client = MlflowClient(f"sqlite:///{mlruns.resolve() / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("integrity").experiment_id], max_results=100)


def _real_disk_full_error(tmp_path):
    """A real 'database or disk is full' from SQLite through SQLAlchemy (a database capped at its size)."""
    import uuid

    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / f'full-{uuid.uuid4().hex}.db'}")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE t (x BLOB)"))
        conn.execute(sqlalchemy.text("PRAGMA max_page_count = 3"))
        try:
            conn.execute(sqlalchemy.text("INSERT INTO t VALUES (zeroblob(100000))"))
        except sqlalchemy.exc.OperationalError as e:
            return e
    raise AssertionError("SQLite accepted the write")


def _real_database_lost_error():
    import psycopg

    from augsweep.serve.process import free_port

    try:
        psycopg.connect(host="127.0.0.1", port=free_port(), user="x", dbname="x", connect_timeout=5)
    except psycopg.OperationalError as e:
        return e
    raise AssertionError("connected to a closed port")


def test_disk_full_and_database_lost_end_in_one_line_with_the_resume_command(tmp_path, monkeypatch, capsys):
    """A full disk and a PostgreSQL stopped mid-sweep each end in one line naming the cause and the command that
    resumes, with no library frames; the traceback goes to a log file."""
    from augsweep import cli

    assert cli.stopped_by_environment(_real_disk_full_error(tmp_path)) == "disk full"
    assert cli.stopped_by_environment(_real_database_lost_error()) == "database lost"
    assert cli.stopped_by_environment(ValueError("a bug")) is None
    for error, cause in ((_real_disk_full_error(tmp_path), "disk full"),
                         (_real_database_lost_error(), "database lost")):
        def fails(args, error=error):
            raise RuntimeError("finishing the trial failed") from error

        monkeypatch.setattr(cli, "_sweep_stores", fails)
        monkeypatch.setattr("sys.argv", ["sweep.py", "experiments/x.yaml", "--mlruns", "m"])
        code = cli.sweep_main(["experiments/x.yaml", "--mlruns", "m"])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1, err
        assert lines[0].startswith(f"error: {cause}") and "python sweep.py experiments/x.yaml --mlruns m" in lines[0]
        log = lines[0].rsplit("full traceback in ", 1)[1].rstrip(")")
        assert "Traceback" in Path(log).read_text()
        Path(log).unlink()


@pytest.mark.parametrize("damage", ["deleted", "empty", "replaced"])
@pytest.mark.parametrize("main", [report_main, sweep_main], ids=["report", "sweep"])
def test_a_lost_mlflow_store_beside_a_live_study_is_refused_and_never_written(copy, tmp_path, capsys, main, damage):
    """The mirror of the lost optuna.db: a deleted, 0-byte or unrelated MLflow store beside a study with finished
    trials is refused (exit 2) and never written: no finished trials left without runs, no new trials beside them."""
    path, mlruns = copy
    for f in mlruns.glob("mlflow.db*"):
        f.unlink()
    if damage == "empty":
        (mlruns / "mlflow.db").write_bytes(b"")
    if damage == "replaced":  # a fresh MLflow store that never saw the study's runs
        from augsweep.stores.tracking import client_for

        client_for(f"sqlite:///{mlruns / 'mlflow.db'}").search_experiments()
    before = _content(mlruns)
    line = _one_line_exit_2(main([str(path), "--mlruns", str(mlruns), "--out", str(tmp_path / "out")]
                                 if main is report_main else [str(path), "--mlruns", str(mlruns), "--trials", "2"]),
                            capsys)
    assert "mlflow.db" in line and ("lost or replaced" in line or "0 bytes" in line), line
    assert _content(mlruns) == before and not (tmp_path / "out").exists()


def test_a_parent_run_whose_artifacts_lie_outside_the_stores_is_refused_before_the_report_writes(
        copy, tmp_path, capsys):
    """A store whose sweep run names another folder received the report's uploads and the registered model."""
    import sqlite3

    path, mlruns = copy
    elsewhere = tmp_path / "elsewhere"
    with sqlite3.connect(mlruns / "mlflow.db") as db:
        db.execute("update runs set artifact_uri = ? where name like 'sweep %'", (elsewhere.as_uri(),))
    line = _one_line_exit_2(report_main([str(path), "--mlruns", str(mlruns), "--out", str(tmp_path / "out")]),
                            capsys)
    assert "outside the stores' artifact folder" in line and str(elsewhere) in line
    assert not elsewhere.exists() and not (tmp_path / "out").exists()


def test_absurd_and_non_finite_values_in_a_store_do_not_end_the_report(copy, tmp_path, capsys):
    """1e308 (and -1e308) trial values crashed a plot (`arange: cannot compute length`); the figures now leave
    them out with a note on the axes, and the report is written."""
    import json
    import sqlite3

    path, mlruns = copy
    with sqlite3.connect(mlruns / "optuna.db") as db:
        for (tid,) in db.execute("select trial_id from trials where state = 'COMPLETE'").fetchall():
            db.execute("update trial_values set value = 1e308 where trial_id = ?", (tid,))
            reps = json.loads(db.execute("select value_json from trial_user_attributes where trial_id = ? and "
                                         "key = 'repeats'", (tid,)).fetchone()[0])
            for rep in reps:
                rep["best_val_loss"], rep["gap"] = -1e308, 1e308
            db.execute("update trial_user_attributes set value_json = ? where trial_id = ? and key = 'repeats'",
                       (json.dumps(reps), tid))
    out = tmp_path / "out"
    assert report_main([str(path), "--mlruns", str(mlruns), "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / "report.html").is_file() and (out / "optimization_history.png").is_file()
    assert "Traceback" not in capsys.readouterr().err


def test_moved_stores_are_read_by_their_layout_and_their_old_place_is_not_recreated(tmp_path, capsys):
    """MLflow keeps absolute artifact paths: a report on a moved mlruns/ lost its curves and recreated the old
    folder for its uploads. Now it reads the runs' files where the stores are, and writes only under --out."""
    import yaml

    from tests.helpers import learning_experiment

    path = tmp_path / "moving.yaml"
    path.write_text(yaml.safe_dump(learning_experiment(name="moving", trials=2)))
    orig, moved = tmp_path / "orig", tmp_path / "moved"
    sweep(path, orig)
    orig.rename(moved)
    before = _content(moved)
    out = tmp_path / "out"
    assert report_main([str(path), "--mlruns", str(moved), "--out", str(out)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr()
    assert "no curves" not in printed.out + printed.err and "Traceback" not in printed.err
    assert f"moved from {orig}" in printed.out, printed.out
    assert not orig.exists()
    budget = (out / "effects_by_budget.csv").read_text().splitlines()
    assert (out / "report.html").is_file() and len(budget) > 1  # the curves were read: one row per epoch budget
    assert (out / "augmentation.py").is_file()  # the best trial's model.keras was read where it lies now
    assert [f for f in _content(moved) if not f[0].endswith(".db")] == [f for f in before if not f[0].endswith(".db")]
    # a resume writes where the stores are now: its new run's files land under moved/, nothing at the old path
    assert sweep_main([str(path), "--mlruns", str(moved), "--trials", "3"]) == 0, capsys.readouterr().err
    assert f"moved from {orig}" in capsys.readouterr().out and not orig.exists(), sorted(orig.rglob("*"))[:8]
    view = read_stores(path, moved)
    assert len(view.trial_runs) == 3 and all((moved / "artifacts" / r.info.run_id / "artifacts" / "history.csv")
                                             .is_file() for r in view.trial_runs)
