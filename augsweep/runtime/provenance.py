"""What a run records about the code that produced it: package versions and the git commit."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata

PACKAGES = ("augsweep", "keras", "tensorflow", "jax", "optuna", "mlflow", "pandas", "numpy",
            "scikit-learn", "scipy", "statsmodels", "matplotlib")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide the numbers."""
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            continue
    return out


@functools.cache
def git_commit() -> str:
    """HEAD of the repository this code runs from, with `-dirty` when it has local changes."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
