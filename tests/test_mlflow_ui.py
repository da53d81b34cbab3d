"""The link a sweep prints opens the study's trials in a real MLflow UI, in a real browser (Debian's chromium
driven by Playwright, the same code as bench/screenshot.py)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, read_stores, run_cli, tiny_experiment

sys.path.insert(0, str(ROOT / "bench"))

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium():
    from screenshot import CHROMIUM

    if not Path(CHROMIUM).exists():
        if os.environ.get("AUGSWEEP_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (.ci/run installs it: apt-get install chromium)")
    pytest.importorskip("playwright")
    return CHROMIUM


def test_printed_link_opens_the_trials_with_their_val_loss(tmp_path, chromium):
    import yaml
    from screenshot import chromium_page, mlflow_ui, open_trials_page

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_experiment(name="ui-check", trials=3, train={"epochs": 1})))
    result = run_cli("sweep.py", path, "--mlruns", tmp_path / "mlruns")
    assert result.returncode == 0, result.stderr[-3000:]
    printed = re.findall(r"http://127\.0\.0\.1:5000/#/\S+", result.stdout)
    runs_link = next(u for u in printed if "/runs?" in u)
    assert "workflowType=machine_learning" in runs_link and "viewStateShareKey=" in runs_link
    assert any("/compare-runs?" in u for u in printed) and any("/metric?" in u for u in printed)

    view = read_stores(path, tmp_path / "mlruns")
    trials = [r for r in view.runs if r.data.tags.get("kind") == "trial"]
    assert len(trials) == 3
    with mlflow_ui(tmp_path / "mlruns") as base, chromium_page() as page:
        text = open_trials_page(page, runs_link.replace("http://127.0.0.1:5000", base), trials[0].info.run_name)
        for run in trials:
            assert run.info.run_name in text
            value = run.data.metrics["val_loss"]
            assert f"{value:.6f}"[:6] in text  # the table shows the value (truncated, not rounded)
        assert "Sort: best_val_loss" in text and "aug_flip" in text  # the saved view applied (depth is off-screen)
