"""Shared fixtures: experiment files in temp dirs, and running the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tiny_experiment(**overrides) -> dict:
    """A synthetic experiment that trains in about a second per trial."""
    exp = {
        "name": "tiny",
        "dataset": {"source": "synthetic", "image_size": [16, 16], "samples": 96},
        "search_space": {
            "depth": {"low": 1, "high": 2},
            "augmentations": {"flip": {"mode": ["horizontal"]}, "contrast": {"factor": [0.1, 0.5]}},
        },
        "train": {"epochs": 2, "batch_size": 32, "learning_rate": 0.003},
        "trials": 3,
        "repeats": 1,
        "sampler": "random",
        "pruner": "none",
        "seed": 0,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(exp.get(key), dict):
            exp[key] = {**exp[key], **value}
        else:
            exp[key] = value
    return exp


@pytest.fixture
def write_experiment(tmp_path):
    """Write an experiment mapping (or raw text) to tmp_path and return its path."""

    def write(data, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write


def run_cli(script: str, *args, cwd: Path | None = None, timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    """Run `python sweep.py|report.py ARGS` as a real process."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *map(str, args)],
        cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout, env=full_env,
    )
