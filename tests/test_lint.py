"""Ruff over the package, the tests, the benchmarks and the entry points, with the rule set pyproject.toml states
(`[tool.ruff]`: pyflakes, pycodestyle errors up to 120 columns, import order)."""

import shutil
import subprocess

import pytest

from tests.helpers import ROOT

PATHS = ["augsweep", "tests", "bench", "sweep.py", "report.py"]


def ruff_binary() -> str | None:
    """The `ruff` the test extra installs (its own finder), else one on PATH."""
    try:
        from ruff.__main__ import find_ruff_bin
    except ImportError:
        return shutil.which("ruff")
    try:
        return find_ruff_bin()
    except FileNotFoundError:
        return shutil.which("ruff")


def test_ruff_finds_nothing():
    ruff = ruff_binary()
    if ruff is None:
        pytest.skip("ruff is not installed: pip install -e '.[test]' (make install)")
    done = subprocess.run([ruff, "check", "--no-cache", *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
