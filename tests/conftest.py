"""Shared fixtures: experiment files in temp dirs (helpers live in `tests/helpers.py`)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A test suite started as a background job of a non-interactive shell (`make test &`, a CI step run with
# `&`) inherits SIGINT ignored, and so would every sweep.py the tests start: the tool rightly leaves an
# ignored SIGINT alone, so the Ctrl-C tests would see exit 0. They test Ctrl-C, so Ctrl-C must be deliverable.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def write_experiment(tmp_path):
    """Write an experiment mapping (or raw text) to tmp_path and return its path."""

    def write(data, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def tiny_report(tmp_path_factory):
    """One tiny sweep and two reports of it through the API (3 trials x 2 seeds on 8x8 digits, a network that
    learns),
    shared by the tests that need a real report and registered model: (folder, experiment, study, report,
    the second report). The stores are `folder / "mlruns"`."""
    import augsweep
    from tests.helpers import learning_experiment

    folder = tmp_path_factory.mktemp("api")
    exp_dict = learning_experiment(name="api-tiny", repeats=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        exp = augsweep.load_experiment(exp_dict)
        study = augsweep.sweep(exp, mlruns=folder / "mlruns", progress=False)
        rep = augsweep.report(exp, mlruns=folder / "mlruns", out=folder / "report")
        again = augsweep.report(exp, mlruns=folder / "mlruns", out=folder / "report2")
    return folder, exp, study, rep, again


@pytest.fixture(scope="session")
def servers():
    """A real PostgreSQL (temporary data folder, free port, 127.0.0.1) and a real `mlflow server` on it,
    for the whole session; stopped (and the folder removed) at the end, whatever happened."""
    import shutil

    from tests.cluster import postgres_available, start_servers

    if not postgres_available():
        if os.environ.get("AUGSWEEP_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed (.ci/run installs it: apt-get install postgresql)")
    saved = os.environ.get("PGPASSFILE")
    running = start_servers()  # exports PGPASSFILE: the password never goes into a URL or argv
    try:
        yield running
    finally:
        if saved is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = saved
        running.stop()
        shutil.rmtree(running.root, ignore_errors=True)
