"""Smoke tests of the benchmark scripts whose measurement is fresh processes they start: memory.py's and
determinism.py's workers, startup.py's commands, report_scale.py's report.py (no timing asserted).

They run as `python bench/X.py --tiny` runs them, one after the other in one fresh interpreter
(`tests/bench_smoke.py`) that trains nothing and imports no TensorFlow itself; the processes each script starts
are fresh processes, as in a full run. Each script keeps its own test, which reads that script's exit status and
output. This file is apart from `tests/test_bench.py` so that the two runners can run on two test workers."""

from __future__ import annotations

import pytest

from tests.bench_smoke import OWN_PROCESSES, assert_ran, run_tiny

SCRIPTS = {
    "memory.py": "augsweep RSS growth over 2 trials",
    "determinism.py": "| deterministic ops (default) |",
    "startup.py": "sweep.py --help median:",
    "report_scale.py": "files byte-identical across rounds",
}
assert set(SCRIPTS) == OWN_PROCESSES


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, dict]:
    """Every script's `--tiny` run, all in one fresh interpreter: script -> its exit code, stdout and stderr."""
    return run_tiny(tmp_path_factory.mktemp("bench") / "results.jsonl", list(SCRIPTS))


@pytest.mark.parametrize("script, expected", [
    pytest.param("memory.py", SCRIPTS["memory.py"], marks=pytest.mark.slow),
    ("determinism.py", SCRIPTS["determinism.py"]),
    ("startup.py", SCRIPTS["startup.py"]),
    ("report_scale.py", SCRIPTS["report_scale.py"]),
])
def test_benchmark_runs_tiny(tiny_runs, script, expected):
    """`python bench/SCRIPT --tiny` exits 0 and prints its table line. The first of these tests carries the one
    run of every script (`tiny_runs`, about 40 CPU-s: the five fresh processes these scripts start that import
    TensorFlow, memory.py's and determinism.py's one worker each, the other three are startup.py's and
    report_scale.py's); the others only read their part."""
    assert_ran(tiny_runs[script], expected)
