"""Shared fixtures: experiment files in temp dirs (helpers live in `tests/helpers.py`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def write_experiment(tmp_path):
    """Write an experiment mapping (or raw text) to tmp_path and return its path."""

    def write(data, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write
