"""A new embedded store made from the image of MLflow's empty database is the store MLflow itself creates."""

from __future__ import annotations

import sqlite3

from augsweep.stores.seed import seed_database
from augsweep.stores.tracking import check_schema, client_for, tracking_uri_for


def _clauses(sql):
    """A CREATE statement's clauses as a set: MLflow's own migrations write a table's constraints in an order
    that varies from one process to the next (Python's hash seed), with the same meaning."""
    return None if sql is None else frozenset(line.strip().rstrip(",") for line in sql.splitlines())


def _dump(path):
    """Schema (tables, indexes, triggers: each statement's clauses) and every row of a SQLite database."""
    with sqlite3.connect(path) as db:
        schema = sorted(((kind, name, table, _clauses(sql)) for kind, name, table, sql in
                         db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")), key=str)
        rows = {name: sorted(db.execute(f'SELECT * FROM "{name}"').fetchall(), key=str)
                for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return schema, rows


def test_a_seeded_store_is_the_store_mlflow_creates_and_takes_runs(tmp_path):
    from mlflow import MlflowClient

    own, seeded = tmp_path / "own", tmp_path / "seeded"
    own.mkdir(), seeded.mkdir()
    MlflowClient(tracking_uri_for(own)).search_experiments()  # MLflow's own initialisation, all migrations
    client = client_for(tracking_uri_for(seeded))  # from the image
    assert (seeded / "mlflow.db").is_file()
    check_schema(tracking_uri_for(seeded))  # at this MLflow's head revision
    own_schema, own_rows = _dump(own / "mlflow.db")
    seeded_schema, seeded_rows = _dump(seeded / "mlflow.db")
    assert seeded_schema == own_schema
    # MLflow's default experiment is MLflow's to create, with the time it opened each store
    assert {k: v for k, v in seeded_rows.items() if k != "experiments"} == \
        {k: v for k, v in own_rows.items() if k != "experiments"}
    drop_times = [(r[0], r[1], r[2], r[3], r[6]) for r in seeded_rows["experiments"]]
    assert drop_times == [(r[0], r[1], r[2], r[3], r[6]) for r in own_rows["experiments"]]
    run = client.create_run(client.create_experiment("e"))
    client.log_metric(run.info.run_id, "val_loss", 0.5, step=0)
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0.5]


def test_an_existing_file_is_never_replaced_and_a_missing_folder_left_alone(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"not a database")
    seed_database(db)
    assert db.read_bytes() == b"not a database"
    seed_database(tmp_path / "absent" / "mlflow.db")
    assert not (tmp_path / "absent").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["mlflow.db"]  # no partial file left behind
