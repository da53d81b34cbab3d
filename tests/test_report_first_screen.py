"""The report's first screen (the answer, the forest plot, the effect-vs-budget figure) fits 1600x1000 in a
real browser (Debian's chromium driven by Playwright, as in tests/test_mlflow_ui.py); the new CSVs exist."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from augsweep.cli import report_main, sweep_main
from tests.helpers import ROOT, assert_tables_and_figures_fit, tiny_experiment, untidy

sys.path.insert(0, str(ROOT / "bench"))


def test_first_screen_fits_and_the_new_files_are_written(tmp_path):
    exp = tiny_experiment(name="first-screen", trials=8, repeats=2, sampler="factorial", stop="decided",
                          search_space={"depth": 1, "augmentations": {"flip": {"mode": ["horizontal"]},
                                                                      "contrast": {"factor": 0.3}}},
                          train={"epochs": 4})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp))
    # In-process through the CLI's entry points: the subprocess path is test_printed_commands.py's. `make sweep`'s
    # `--members auto`: each block's design points as one stacked program (16 trainings in 2 programs); that it
    # trains what one training at a time trains is tests/test_stacked_training.py's claim.
    assert sweep_main([str(path), "--mlruns", str(tmp_path / "m"), "--members", "auto"]) == 0
    assert report_main([str(path), "--mlruns", str(tmp_path / "m"), "--out", str(tmp_path / "r")]) == 0
    by = pd.read_csv(tmp_path / "r" / "effects_by_budget.csv")
    assert list(by.columns) == ["augmentation", "epochs", "effect", "ci_low", "ci_high", "n_seeds"]
    assert sorted(set(by["epochs"]))[-1] == 4 and by["epochs"].nunique() >= 4
    conf = pd.read_csv(tmp_path / "r" / "configurations.csv")
    assert list(conf.columns) == ["configuration", "n_trials", "n_seeds", "mean_best_val_loss", "diff_vs_none",
                                  "ci_low", "ci_high", "verdict", "magnitudes"]
    assert conf["configuration"].is_unique and len(conf) == 4 and (conf["verdict"] == "baseline").sum() == 1
    assert conf["mean_best_val_loss"].is_monotonic_increasing
    assert untidy((tmp_path / "r" / "report.md").read_text()) == []

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
        assert_tables_and_figures_fit(page)


def _figures():
    """Every figure a report draws, on small made-up inputs, with the width report.html gives it."""
    from augsweep import plots

    rng = np.random.default_rng(0)
    augs = ["flip", "contrast", "rotation", "warp"]
    effects = pd.DataFrame({"augmentation": augs, "effect": [-0.05, 0.0, 0.01, 0.5], "ci_low": [-0.08, -0.03, 0, 0.4],
                            "ci_high": [-0.02, 0.03, 0.02, 0.6],
                            "verdict": ["helps", "undecided", "negligible", "hurts"]})
    seeds = pd.DataFrame({"augmentation": np.repeat(augs, 3), "effect": rng.normal(0, 0.05, 12)})
    by = pd.DataFrame([{"augmentation": a, "epochs": e, "effect": 0.01 * e, "ci_low": 0.0, "ci_high": 0.02 * e}
                       for a in augs for e in (1, 2, 3)])
    curves = pd.DataFrame([{"trial": t, "epoch": e, "repeat": 0, "val_loss": 1 / (e + 1) + 0.01 * t,
                            "loss": 0.9 / (e + 1), **{f"aug_{a}": bool(t >> i & 1) for i, a in enumerate(augs)}}
                           for t in range(16) for e in range(3)])
    trials = pd.DataFrame({"trial": range(16), "state": "COMPLETE",
                           "value": curves.groupby("trial")["val_loss"].min().to_numpy()})
    variants = curves.assign(variant=np.where(curves["trial"] % 2, "base", "none"), seed=curves["trial"] // 2)
    affinity = pd.DataFrame({"augmentation": augs, "affinity": [0.9, 0.8, 1.0, 0.7], "diversity": [1.1, 1.2, 1.0, 1.3],
                             "effect": [-0.05, 0.0, 0.01, 0.5]})
    half, page = plots.HALF_PX, plots.PAGE_PX
    return {
        "forest": (plots.forest(effects, margin=0.02, seeds=seeds), half),
        "budget": (plots.effect_vs_budget(by, epochs=3, margin=0.02), half),
        "curves": (plots.curves_by_augmentation(curves, augs), page),
        "train_vs_val": (plots.train_vs_val({"best trial: t03": curves[curves["trial"] == 3],
                                             "best without augmentation: t00": curves[curves["trial"] == 0]}), page),
        "history": (plots.optimization_history(trials, curves, running_best=False), page),
        "ablation_curves": (plots.variant_curves(variants, ["none", "base"]), page),
        "affinity": (plots.affinity_scatter(affinity), page),
    }


def test_every_report_figure_shows_at_its_natural_size_with_text_of_11_px_or_more():
    from augsweep import plots
    from augsweep.report.render import CSS

    assert f"max-width:{plots.PAGE_PX}px" in CSS and 2 * plots.HALF_PX + 16 <= plots.PAGE_PX  # two fit side by side
    for name, (fig, place) in _figures().items():
        width = fig.get_figwidth() * plots.DPI
        assert width <= place, f"{name} is {width:.0f} px wide, shown in {place}: the browser would shrink it"
        assert plots.text_px(fig, place) >= plots.MIN_TEXT_PX, (name, plots.text_px(fig, place))
