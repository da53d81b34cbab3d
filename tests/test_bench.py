"""Smoke tests: each benchmark script runs end to end on a tiny setting (no timing asserted). `bench/parallel.py`
runs in `tests/test_runs_workers.py`, whose one-worker-versus-auto comparison it is; the scripts whose measurement
is processes they start (memory.py, determinism.py, startup.py, report_scale.py) run in
`tests/test_bench_processes.py`.

The TensorFlow scripts here run as `python bench/X.py --tiny` runs them, but one after the other in one fresh
interpreter (`tests/bench_smoke.py`), which imports TensorFlow once for all of them. Each script keeps its own
test, which reads that script's exit status and output."""

from __future__ import annotations

import importlib.util

import pytest

from tests.bench_smoke import assert_ran, run_tiny
from tests.helpers import jax_without_tensorflow, run_cli

# Those that never turn on deterministic ops first, then those that do (through `runtime.setup`, as a sweep
# does: TensorFlow keeps part of that switch on for the life of a process).
SCRIPTS = {
    "gpu.py": "GFLOP per training image",
    "throughput.py": "| none |",
    "streaming.py": "| streamed + cache |",
    "reuse.py": "fixed cost per repeat:",
    "overhead.py": "ratio augsweep / plain Keras:",
    "bookkeeping.py": "share of a 10 s trial",
    "pruning.py": "noise: best unpruned configuration",
    "group.py": "| branches | 2 |",
    "storage.py": "PostgreSQL / SQLite:",
}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, dict]:
    """Every script's `--tiny` run, all in one fresh interpreter: script -> its exit code, stdout and stderr
    (storage.py's only where PostgreSQL is installed)."""
    from tests.cluster import postgres_available

    scripts = [s for s in SCRIPTS if s != "storage.py" or postgres_available()]
    return run_tiny(tmp_path_factory.mktemp("bench") / "results.jsonl", scripts)


@pytest.mark.parametrize("script, expected", [
    ("overhead.py", SCRIPTS["overhead.py"]),
    ("throughput.py", SCRIPTS["throughput.py"]),
    ("bookkeeping.py", SCRIPTS["bookkeeping.py"]),
    pytest.param("pruning.py", SCRIPTS["pruning.py"], marks=pytest.mark.slow),
    ("gpu.py", SCRIPTS["gpu.py"]),
    ("streaming.py", SCRIPTS["streaming.py"]),
    ("reuse.py", SCRIPTS["reuse.py"]),
    ("group.py", SCRIPTS["group.py"]),
])
def test_benchmark_runs_tiny(tiny_runs, script, expected):
    """`python bench/SCRIPT --tiny` exits 0 and prints its table line. The first of these tests carries the one
    run of every script (`tiny_runs`, about 65 CPU-s, nearly all of it on one core: one TensorFlow import and
    every script's trainings); the others only read their part."""
    assert_ran(tiny_runs[script], expected)


def test_storage_benchmark_runs_tiny(request):
    from tests.cluster import postgres_available

    if not postgres_available():
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    assert_ran(request.getfixturevalue("tiny_runs")["storage.py"], SCRIPTS["storage.py"])


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_gpu_benchmark_runs_under_jax_without_tensorflow(tmp_path):
    """Its own process (Keras picks its backend once, when it is first imported), where TensorFlow cannot be
    imported, as on a GPU machine with JAX only."""
    result = run_cli("bench/gpu.py", "--tiny", env=jax_without_tensorflow(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend jax" in result.stdout
