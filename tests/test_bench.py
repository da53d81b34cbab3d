"""Smoke tests: each benchmark script runs end to end on a tiny setting (no timing asserted). `bench/parallel.py`
runs in `tests/test_runs_workers.py`, whose one-worker-versus-auto comparison it is.

The TensorFlow scripts run as `python bench/X.py --tiny` runs them, but one after the other in one fresh
interpreter (`tests/bench_smoke.py`), which imports TensorFlow once for all of them; the processes a script starts
itself (memory.py's and determinism.py's workers, startup.py's commands, report_scale.py's report.py) are still
fresh processes. Each script keeps its own test, which reads that script's exit status and output."""

from __future__ import annotations

import importlib.util

import pytest

from tests.bench_smoke import read_results
from tests.helpers import run_cli

# Those that never turn on deterministic ops first, then those that do (through `runtime.setup`, as a sweep
# does: TensorFlow keeps part of that switch on for the life of a process), then those whose measurement is
# other processes (their own part trains nothing in this one).
SCRIPTS = {
    "gpu.py": "GFLOP per training image",
    "throughput.py": "| none |",
    "streaming.py": "| streamed + cache |",
    "reuse.py": "fixed cost per repeat:",
    "overhead.py": "ratio augsweep / plain Keras:",
    "bookkeeping.py": "share of a 10 s trial",
    "pruning.py": "noise: best unpruned configuration",
    "group.py": "| branches | 2 |",
    "memory.py": "augsweep RSS growth over 2 trials",
    "determinism.py": "| deterministic ops (default) |",
    "startup.py": "sweep.py --help median:",
    "report_scale.py": "files byte-identical across rounds",
    "storage.py": "PostgreSQL / SQLite:",
}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, dict]:
    """Every script's `--tiny` run, all in one fresh interpreter: script -> its exit code, stdout and stderr
    (storage.py's only where PostgreSQL is installed)."""
    from tests.cluster import postgres_available

    scripts = [s for s in SCRIPTS if s != "storage.py" or postgres_available()]
    results = tmp_path_factory.mktemp("bench") / "results.jsonl"
    done = run_cli("tests/bench_smoke.py", results, *scripts, timeout=1800)
    runs = read_results(results)
    # A script the runner never reported (it died on the way): the runner's own exit status and error instead.
    for script in scripts:
        runs.setdefault(script, {"script": script, "code": f"none: the runner exited {done.returncode} first",
                                 "stdout": done.stdout[-3000:], "stderr": done.stderr})
    return runs


def assert_ran(run: dict, expected: str) -> None:
    assert run["code"] == 0, f"{run['script']} exited {run['code']}:\n{run['stderr'][-3000:]}"
    assert expected in run["stdout"], run["stdout"][-3000:]


@pytest.mark.parametrize("script, expected", [
    ("overhead.py", SCRIPTS["overhead.py"]),
    ("throughput.py", SCRIPTS["throughput.py"]),
    ("bookkeeping.py", SCRIPTS["bookkeeping.py"]),
    ("startup.py", SCRIPTS["startup.py"]),
    pytest.param("memory.py", SCRIPTS["memory.py"], marks=pytest.mark.slow),
    pytest.param("pruning.py", SCRIPTS["pruning.py"], marks=pytest.mark.slow),
    ("gpu.py", SCRIPTS["gpu.py"]),
    ("streaming.py", SCRIPTS["streaming.py"]),
    ("reuse.py", SCRIPTS["reuse.py"]),
    ("determinism.py", SCRIPTS["determinism.py"]),
    ("report_scale.py", SCRIPTS["report_scale.py"]),
    ("group.py", SCRIPTS["group.py"]),
])
def test_benchmark_runs_tiny(tiny_runs, script, expected):
    """`python bench/SCRIPT --tiny` exits 0 and prints its table line. The first of these tests carries the one
    run of every script (`tiny_runs`, over 60 s: about 120 CPU-s, nearly all of it on one core: every script's
    trainings, and the seven fresh processes that memory.py, determinism.py, startup.py and report_scale.py
    measure, five of which import TensorFlow); the others only read their part."""
    assert_ran(tiny_runs[script], expected)


def test_storage_benchmark_runs_tiny(request):
    from tests.cluster import postgres_available

    if not postgres_available():
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    assert_ran(request.getfixturevalue("tiny_runs")["storage.py"], SCRIPTS["storage.py"])


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_gpu_benchmark_runs_under_jax_without_tensorflow():
    """Its own process: Keras picks its backend once, when it is first imported."""
    result = run_cli("bench/gpu.py", "--tiny", env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend jax" in result.stdout
