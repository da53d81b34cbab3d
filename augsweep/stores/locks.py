"""The study's locks: one `Lock` protocol, two implementations, chosen per storage by `study_locks`.

Two locks per study serialize what Optuna cannot:
- the start lock (exclusive, held for milliseconds): study set-up and "count, then start a
  trial", so parallel workers never start more trials than the budget leaves. With SQLite it is
  the file `<study>.lock` (`FileLock`: `fcntl.flock`, one machine); with PostgreSQL it is a session
  advisory lock inside the database itself (`AdvisoryLock`), so workers on many machines share it.
  Both are released when their holder dies, even by `kill -9` (the kernel closes the file;
  PostgreSQL ends the session).
- `<study>.alive` (a shared file lock, held for a sweep process's lifetime): `--repair` takes it
  exclusively to learn that no sweep process on this machine is alive.

`tests/test_stores_locks.py` runs one contract test against both implementations.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; single-worker sweeps still work
    fcntl = None


@runtime_checkable
class Lock(Protocol):
    """What the sweep needs of a lock: exclusive or shared, blocking or not, a context manager for the
    exclusive case, `held`, and `close` (release and free what the lock holds: a file, a connection)."""

    def acquire(self, shared: bool = False, blocking: bool = True) -> bool: ...

    def release(self) -> None: ...

    def close(self) -> None: ...

    @property
    def held(self) -> bool: ...

    def __enter__(self) -> "Lock": ...

    def __exit__(self, *exc) -> None: ...


def lock_dir(mlruns: Path, embedded: bool, storage_url: str) -> Path:
    """Beside the embedded stores; for a storage URL, a folder named after it in this user's private runtime
    folder (XDG_RUNTIME_DIR, else ~/.cache), never a predictable name in a world-writable /tmp that another
    user could create first."""
    if embedded:
        return Path(mlruns) / ".locks"
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache") / "augsweep-locks"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = base.lstat()
    if not base.is_dir() or base.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
        from ..experiment.schema import ConfigError

        raise ConfigError(f"the lock folder {base} must be a folder private to this user (mode 700, not a link); "
                          f"remove it to let augsweep make it again")
    return base / hashlib.sha256(storage_url.encode()).hexdigest()[:16]


class FileLock:
    """`fcntl.flock` on a file: exclusive or shared, blocking or not; a no-op without fcntl."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self, shared: bool = False, blocking: bool = True) -> bool:
        if fcntl is None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def close(self) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self.fd is not None or fcntl is None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class AdvisoryLock:
    """A PostgreSQL session advisory lock on one key (a `Lock`): the budget's "count, then start" step is
    serialized by the database every worker shares, on any machine.

    The lock lives on a connection of its own (kept open between acquisitions), so Optuna's own
    connections commit the new trial while it is held; PostgreSQL drops it when the holder's
    session ends (process killed, machine lost)."""

    def __init__(self, url: str, key: int):
        self.url, self.key = url, key
        self._engine = self._conn = None
        self._mode: str | None = None  # "shared" or "exclusive" while held

    def _connection(self):
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        from .urls import database_engine_kwargs

        if self._engine is None:
            kwargs = {k: v for k, v in database_engine_kwargs(self.url).items() if k != "pool_pre_ping"}
            self._engine = sqlalchemy.create_engine(self.url, poolclass=NullPool, **kwargs)
        if self._conn is None or self._conn.closed:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def _call(self, function: str):
        import sqlalchemy

        try:
            return self._connection().execute(sqlalchemy.text(f"SELECT {function}(:k)"), {"k": self.key}).scalar()
        except sqlalchemy.exc.DBAPIError:  # the server restarted since: the lock went with the session
            self._conn = None
            return self._connection().execute(sqlalchemy.text(f"SELECT {function}(:k)"), {"k": self.key}).scalar()

    def acquire(self, shared: bool = False, blocking: bool = True) -> bool:
        kind = "_shared" if shared else ""
        if blocking:
            self._call(f"pg_advisory_lock{kind}")
        elif not self._call(f"pg_try_advisory_lock{kind}"):
            return False
        self._mode = "shared" if shared else "exclusive"
        return True

    def release(self) -> None:
        if self._mode is not None:
            kind, self._mode = self._mode, None
            self._call("pg_advisory_unlock_shared" if kind == "shared" else "pg_advisory_unlock")

    def close(self) -> None:
        self.release()
        if self._conn is not None:
            self._conn.close()
        if self._engine is not None:
            self._engine.dispose()
        self._conn = self._engine = None

    @property
    def held(self) -> bool:
        return self._mode is not None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def advisory_key(study_name: str) -> int:
    """A signed 64-bit advisory-lock key for the study (its name hashed under an augsweep prefix)."""
    return int.from_bytes(hashlib.sha256(f"augsweep:{study_name}".encode()).digest()[:8], "big", signed=True)


def study_locks(mlruns: Path, embedded: bool, storage_url: str, study_name: str) -> tuple[Lock, Lock]:
    """(exclusive start lock, shared liveness lock) of one study: the start lock is an advisory lock
    inside PostgreSQL for a PostgreSQL storage, a lock file otherwise."""
    from .urls import scheme_of

    safe = hashlib.sha256(study_name.encode()).hexdigest()[:12]
    d = lock_dir(mlruns, embedded, storage_url)
    start = (AdvisoryLock(storage_url, advisory_key(study_name)) if scheme_of(storage_url) == "postgresql"
             else FileLock(d / f"{safe}.lock"))
    return start, FileLock(d / f"{safe}.alive")
