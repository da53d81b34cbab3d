"""The report's first screen (the answer, the forest plot, the effect-vs-budget figure) fits 1600x1000 in a
real browser (Debian's chromium driven by Playwright, as in tests/test_mlflow_ui.py); the new CSVs exist."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import ROOT, run_cli, tiny_experiment

sys.path.insert(0, str(ROOT / "bench"))


def test_first_screen_fits_and_the_new_files_are_written(tmp_path):
    exp = tiny_experiment(name="first-screen", trials=8, repeats=2, sampler="factorial", stop="decided",
                          search_space={"depth": 1, "augmentations": {"flip": {"mode": ["horizontal"]},
                                                                      "contrast": {"factor": 0.3}}},
                          train={"epochs": 4})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp))
    assert run_cli("sweep.py", path, "--mlruns", tmp_path / "m").returncode == 0
    r = run_cli("report.py", path, "--mlruns", tmp_path / "m", "--out", tmp_path / "r")
    assert r.returncode == 0, r.stderr[-2000:]
    by = pd.read_csv(tmp_path / "r" / "effects_by_budget.csv")
    assert list(by.columns) == ["augmentation", "epochs", "effect", "ci_low", "ci_high", "n_seeds"]
    assert sorted(set(by["epochs"]))[-1] == 4 and by["epochs"].nunique() >= 4
    conf = pd.read_csv(tmp_path / "r" / "configurations.csv")
    assert list(conf.columns) == ["configuration", "n_trials", "n_seeds", "mean_best_val_loss", "diff_vs_none",
                                  "ci_low", "ci_high", "verdict"]
    assert conf["configuration"].is_unique and len(conf) == 4 and (conf["verdict"] == "baseline").sum() == 1
    assert conf["mean_best_val_loss"].is_monotonic_increasing

    from screenshot import CHROMIUM, chromium_page

    if not Path(CHROMIUM).exists():
        if os.environ.get("AUGSWEEP_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing")
    pytest.importorskip("playwright")
    with chromium_page(1600, 1000) as page:
        page.goto((tmp_path / "r" / "report.html").as_uri())
        for alt in ("effect forest plot", "effect vs epoch budget"):
            box = page.locator(f"img[alt='{alt}']").bounding_box()
            assert box is not None and box["y"] + box["height"] <= 1000 and box["x"] + box["width"] <= 1600, (alt, box)
