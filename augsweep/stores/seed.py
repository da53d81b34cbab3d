"""A new embedded tracking database, created from an image of MLflow's own empty database.

MLflow creates a new SQLite store by running its whole chain of schema migrations (about 60 Alembic revisions:
about 1 s of CPU on a small machine, for every new `mlruns/`). What the chain leaves is the same for one MLflow
version wherever the file lies: the tables, the schema revision and MLflow's default workspace row, and no path,
time, experiment or run (MLflow adds its default experiment, with the store's own artifact root, when it opens
the store). So the first new store of a process is initialised by MLflow itself in a temporary folder and its
bytes are kept; every new store after it starts from those bytes, and MLflow opens it as a store already at its
head revision. Anything unexpected (another MLflow without the initialiser, a failed write) leaves the file for
MLflow to create, as it always would.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import tempfile
from pathlib import Path


@functools.cache
def _image() -> bytes | None:
    """The bytes of an empty database MLflow has initialised (made once per process)."""
    try:
        import sqlalchemy
        from mlflow.store.db.utils import _initialize_tables
    except ImportError:  # an MLflow without this initialiser: it creates every store itself
        return None
    with tempfile.TemporaryDirectory(prefix="augsweep-schema-") as folder:
        engine = sqlalchemy.create_engine(f"sqlite:///{Path(folder) / 'mlflow.db'}")
        try:
            _initialize_tables(engine)
        finally:
            engine.dispose()
        with sqlite3.connect(Path(folder) / "mlflow.db") as db:
            db.execute("PRAGMA journal_mode=DELETE")  # one self-contained file; each store's connections set WAL
            return db.serialize()


def seed_database(path: Path) -> None:
    """Create the embedded store's database `path` (absent, in an existing folder) from the image; never
    replaces a file: a store another process created first is kept."""
    if path.exists() or not path.parent.is_dir():
        return
    try:
        image = _image()
    except Exception:  # noqa: BLE001 - the image only saves time: MLflow creates the store itself, as always
        return
    if image is None:
        return
    part = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        part.write_bytes(image)
        os.link(part, path)  # atomic, and fails where the file appeared meanwhile
    except OSError:
        pass  # created by another process, or not writable here: MLflow opens or creates it as before
    finally:
        part.unlink(missing_ok=True)
