"""Smoke tests: each benchmark script runs end to end on a tiny setting (no timing asserted). `bench/parallel.py`
runs in `tests/test_runs_workers.py`, whose one-worker-versus-auto comparison it is."""

from __future__ import annotations

import importlib.util

import pytest

from tests.helpers import run_cli


@pytest.mark.parametrize("script, expected", [
    ("overhead.py", "ratio augsweep / plain Keras:"),
    ("throughput.py", "| none |"),
    ("bookkeeping.py", "share of a 10 s trial"),
    ("startup.py", "sweep.py --help median:"),
    pytest.param("memory.py", "augsweep RSS growth over 2 trials", marks=pytest.mark.slow),
    pytest.param("pruning.py", "noise: best unpruned configuration", marks=pytest.mark.slow),
    ("gpu.py", "GFLOP per training image"),
    ("streaming.py", "| streamed + cache |"),
    ("reuse.py", "fixed cost per repeat:"),
    ("determinism.py", "| deterministic ops (default) |"),
    ("report_scale.py", "files byte-identical across rounds"),
    ("group.py", "| branches | 2 |"),
])
def test_benchmark_runs_tiny(script, expected):
    result = run_cli(f"bench/{script}", "--tiny")
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout


def test_storage_benchmark_runs_tiny():
    from tests.cluster import postgres_available

    if not postgres_available():
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    result = run_cli("bench/storage.py", "--tiny")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PostgreSQL / SQLite:" in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_gpu_benchmark_runs_under_jax_without_tensorflow():
    result = run_cli("bench/gpu.py", "--tiny", env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend jax" in result.stdout
