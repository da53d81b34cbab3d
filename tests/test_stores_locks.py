"""One contract for every `Lock` (as Optuna's storage tests run one suite over every backend): the file lock
and the PostgreSQL advisory lock must behave alike for the sweep, which only sees the protocol."""

from __future__ import annotations

import shutil
import threading

import pytest

from augsweep.stores.locks import AdvisoryLock, FileLock, Lock, advisory_key, study_locks


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL (no MLflow server): the advisory lock's database."""
    import os

    from tests.cluster import postgres_available, start_servers

    if not postgres_available():
        if os.environ.get("AUGSWEEP_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    saved = os.environ.get("PGPASSFILE")
    servers = start_servers(mlflow=False)
    try:
        yield servers
    finally:
        servers.stop()
        shutil.rmtree(servers.root, ignore_errors=True)
        if saved is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = saved


@pytest.fixture(params=["file", "advisory"])
def make_lock(request, tmp_path):
    """A factory of locks on one name: two calls give two holders of the same lock (two workers)."""
    made = []
    if request.param == "file":
        def make():
            made.append(FileLock(tmp_path / "study.lock"))
            return made[-1]
    else:
        url = request.getfixturevalue("postgres").database("locks")

        def make():
            made.append(AdvisoryLock(url, advisory_key("contract")))
            return made[-1]
    yield make
    for lock in made:
        lock.close()


def test_is_a_lock(make_lock):
    assert isinstance(make_lock(), Lock)


def test_exclusive_excludes_everyone_until_released(make_lock):
    a, b = make_lock(), make_lock()
    assert not a.held
    assert a.acquire(blocking=False) and a.held
    assert not b.acquire(blocking=False) and not b.held
    assert not b.acquire(shared=True, blocking=False)
    a.release()
    assert not a.held
    assert b.acquire(blocking=False)
    b.release()


def test_shared_holders_coexist_and_keep_an_exclusive_out(make_lock):
    a, b, c = make_lock(), make_lock(), make_lock()
    assert a.acquire(shared=True, blocking=False) and b.acquire(shared=True, blocking=False)
    assert not c.acquire(blocking=False)  # `--repair` learns that a sweep process is alive
    a.release()
    assert not c.acquire(blocking=False)
    b.release()
    assert c.acquire(blocking=False)
    c.release()


def test_context_manager_and_close_release(make_lock):
    a, b = make_lock(), make_lock()
    with a:
        assert a.held and not b.acquire(blocking=False)
    assert not a.held and b.acquire(blocking=False)
    b.close()  # close releases
    assert not b.held and a.acquire(blocking=False)
    a.release()
    a.release()  # releasing twice is harmless


def test_a_blocking_acquire_waits_for_the_holder(make_lock):
    a, b = make_lock(), make_lock()
    a.acquire()
    got = threading.Event()

    def wait():
        b.acquire()
        got.set()

    t = threading.Thread(target=wait, daemon=True)
    t.start()
    assert not got.wait(0.5)  # held: the second worker waits
    a.release()
    assert got.wait(30)
    t.join(30)
    b.release()


def test_study_locks_pick_the_implementation_by_storage(tmp_path):
    start, alive = study_locks(tmp_path / "mlruns", True, "sqlite:///x.db", "s")
    assert isinstance(start, FileLock) and isinstance(alive, FileLock)
    start, alive = study_locks(tmp_path / "mlruns", False, "postgresql+psycopg://u@127.0.0.1:1/db", "s")
    assert isinstance(start, AdvisoryLock) and isinstance(alive, FileLock)
    start.close()  # never connected: closing is harmless
