"""Smoke test: each benchmark script runs end to end on a tiny setting (no timing asserted)."""

from __future__ import annotations

from tests.conftest import run_cli


def test_overhead_benchmark_runs_tiny():
    result = run_cli("bench/overhead.py", "--tiny")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ratio augsweep / plain Keras:" in result.stdout
