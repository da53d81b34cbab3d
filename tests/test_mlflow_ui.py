"""The link a sweep prints opens the study's trials in a real MLflow UI, in a real browser (Debian's chromium
driven by Playwright, the same code as bench/screenshot.py)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path

import pytest

from augsweep.cli import report_main, sweep_main
from tests.helpers import (
    ROOT,
    assert_tables_and_figures_fit,
    learning_experiment,
    read_stores,
)

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


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A tiny sweep (two switches, two depths, two seeds per trial: the 8-run full factorial of depth and the
    switches) and its report, as the CLI prints them."""
    import yaml

    tmp = tmp_path_factory.mktemp("ui")
    path = tmp / "exp.yaml"
    path.write_text(yaml.safe_dump(learning_experiment(name="ui-check", trials=8, repeats=2, sampler="factorial")))
    # In-process through the CLI's own entry points (the printed lines are the same; the subprocess path of
    # sweep.py and report.py is tested by test_printed_commands.py), so the module pays no interpreter start-up.
    # `make sweep`'s `--members auto`: each depth's design points as one stacked program (16 trainings in 2).
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert sweep_main([str(path), "--mlruns", str(tmp / "mlruns"), "--members", "auto"]) == 0
        assert report_main([str(path), "--mlruns", str(tmp / "mlruns"), "--out", str(tmp / "report")]) == 0
    return path, tmp / "mlruns", printed.getvalue(), tmp / "report"


@pytest.fixture(scope="module")
def ui(swept, chromium):
    """One MLflow UI (what `make ui` runs) over the sweep's stores for the module's tests, which only read it;
    its base URL."""
    from screenshot import mlflow_ui

    with mlflow_ui(swept[1]) as base:
        yield base


def test_printed_links_land_on_a_usable_view_at_1600x1000(swept, ui):
    from screenshot import chromium_page, in_view, open_trials_page

    path, mlruns, stdout, _ = swept
    printed = re.findall(r"http://127\.0\.0\.1:5000/#/\S+", stdout)
    runs_link = next(u for u in printed if "/runs?" in u)
    curves_link = next(u for u in printed if "/metric?" in u)
    compare_link = next(u for u in printed if "/compare-runs?" in u)
    assert "workflowType=machine_learning" in runs_link and "viewStateShareKey=" in runs_link

    view = read_stores(path, mlruns)
    trials = sorted((r for r in view.runs if r.data.tags.get("kind") == "trial"),
                    key=lambda r: r.data.metrics["best_val_loss"])
    assert len(trials) == 8
    # Every trial logs the same per-repeat names (repeat0/…, repeat1/…): curves and bests share the index.
    for run in trials:
        per_repeat = {k for k in run.data.metrics if "/" in k}
        assert {"repeat0/best_val_loss", "repeat1/best_val_loss", "repeat0/val_loss", "repeat1/val_loss"} <= per_repeat
    configs = []
    for run in trials:
        key = tuple(sorted((k, v) for k, v in run.data.params.items() if k == "depth" or k.startswith("aug_")))
        if key not in configs:
            configs.append(key)
    best3 = [r.info.run_name for r in trials if r.info.run_name.split()[0] in
             {line.split()[0] for line in stdout.split("side by side")[0].split("configurations (")[-1].split(", ")}]
    assert len(best3) == 3 and len(set(best3)) == 3

    with chromium_page() as page:
        local = lambda url: url.replace("http://127.0.0.1:5000", ui)  # noqa: E731
        text = open_trials_page(page, local(runs_link), trials[0].info.run_name)
        assert "Sort: best_val_loss" in text
        for name in ("depth", "aug_flip", "aug_contrast", "best_val_loss"):  # the columns a user needs, on screen
            assert in_view(page, page.get_by_role("columnheader", name=name)), name
        assert in_view(page, page.get_by_text(trials[0].info.run_name))

        page.goto(local(curves_link))
        for name in best3:  # the three distinct configurations' curves, named in the legend
            assert in_view(page, page.get_by_text(name, exact=False)), name
        assert in_view(page, page.get_by_text("val_loss", exact=True))

        page.goto(local(compare_link))
        page.get_by_text(best3[0]).first.wait_for(state="attached", timeout=60_000)
        assert in_view(page, page.get_by_text("best_val_loss", exact=True))


def test_report_first_screen_shows_the_answer_and_the_forest_plot(swept, chromium):
    from screenshot import chromium_page, in_view

    *_, report = swept
    with chromium_page() as page:
        page.goto((report / "report.html").resolve().as_uri())
        assert in_view(page, page.get_by_role("heading", name="Answer"))
        assert in_view(page, page.get_by_text("turning each augmentation on changes the best validation loss"))
        forest = page.get_by_alt_text("effect forest plot")
        assert in_view(page, forest)
        box = forest.bounding_box()
        assert box["y"] + box["height"] <= 1000, box  # the whole plot, not just its top edge
        # The lower half: the interaction table without its constant columns (ci_method, n_seeds, …), every
        # table inside the page, every figure at its natural size.
        assert page.get_by_role("heading", name="Augmentation x depth interactions").count() == 1
        assert page.get_by_role("columnheader", name="ci_method").count() == 0
        assert_tables_and_figures_fit(page)



def _shown(page, locator) -> bool:
    """`locator`'s first match is in the viewport and not clipped away: the element the browser hits at its
    first characters is it (or inside it), not whatever an overflow-hidden box leaves there."""
    from screenshot import in_view

    return in_view(page, locator) and locator.first.evaluate(
        "el => { const r = el.getBoundingClientRect();"
        " const hit = document.elementFromPoint(r.left + Math.min(r.width, 40) / 2,"
        "                                       r.top + Math.min(r.height, 16) / 2);"
        " return !!hit && (el.contains(hit) || hit.contains(el)); }")


def test_experiment_page_shows_the_answer_at_1600x1000(swept, ui):
    """The report's answer is the experiment's description (`mlflow.note.content`), which MLflow 3's
    experiment page shows under its title (ExperimentViewHeader's description box, rendered Markdown: collapsed
    to about one line, its expand button shows the rest)."""
    from augsweep.stores.registry import NOTE_TAG

    from screenshot import chromium_page

    path, mlruns, stdout, report = swept
    view = read_stores(path, mlruns)
    experiment = view.client.get_experiment_by_name("ui-check")
    note = experiment.tags[NOTE_TAG]
    answer = note.split("\n\n")[0]
    assert "turning each augmentation on changes the best validation loss" in answer
    assert answer in (report / "report.md").read_text()  # the report's own answer paragraph, first
    shown_text = answer.replace("`", "").replace("**", "")  # as the UI renders its Markdown
    with chromium_page() as page:
        # The runs link the sweep printed: the page a user lands on (a bare #/experiments/<id> opens MLflow's
        # GenAI overview, under a tour popover, for an experiment without traces).
        runs_link = next(u for u in re.findall(r"http://127\.0\.0\.1:5000/#/\S+", stdout) if "/runs?" in u)
        assert f"/experiments/{experiment.experiment_id}/" in runs_link
        page.goto(runs_link.replace("http://127.0.0.1:5000", ui))
        box = page.locator('[data-component-id="mlflow.experiment.metadata_editor.edit_button"]').locator("xpath=..")
        assert _shown(page, box.get_by_text(shown_text[:40], exact=False)), "the answer's start shows without a click"
        box.locator('[data-component-id="mlflow.experiment.metadata_editor.expand_button"]').click()
        # Expanded: the whole answer, the verdict table and the recommended block, without scrolling.
        assert _shown(page, box.get_by_text(shown_text, exact=False))
        assert _shown(page, box.get_by_role("columnheader", name="verdict"))
        for row in ("flip", "contrast"):  # the verdict table's rows
            assert _shown(page, box.get_by_role("cell", name=row, exact=True)), row
        block = box.get_by_text("Recommended augmentation block:", exact=False)
        assert _shown(page, block)
        b = block.first.bounding_box()
        assert b["y"] + b["height"] <= 1000, b
