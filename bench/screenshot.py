"""The MLflow UI as a user meets it after a sweep, in Debian's chromium: the documentation's screenshot, and the
browser test's driver (tests/test_mlflow_ui.py uses `open_trials_page`).

    python bench/screenshot.py [--mlruns DIR] [--out docs/mlflow-trials.png] [--compare PATH]

Without --mlruns it runs a tiny sweep first (synthetic images, a few seconds). It starts `mlflow ui`
on a free port over the store (as `make ui` does), opens the link augsweep prints, waits for the trials
table and saves a PNG. Playwright drives /usr/bin/chromium; it never downloads a browser.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = os.environ.get("AUGSWEEP_CHROMIUM", "/usr/bin/chromium")


@contextlib.contextmanager
def mlflow_ui(mlruns: Path):
    """`mlflow ui` over an embedded store on a free port (what `make ui` runs); yields its base URL."""
    from augsweep.serve.mlflow_ui import ui_command
    from augsweep.serve.process import Service, free_port

    port = free_port()
    cmd, env = ui_command(Path(mlruns).resolve(), "127.0.0.1", port)
    service = Service("mlflow ui", cmd, f"http://127.0.0.1:{port}", Path(mlruns) / "mlflow-ui.log", env)
    service.start(timeout=180, health="/health")
    try:
        yield service.url
    finally:
        service.stop()


VIEWPORT = (1600, 1000)  # the first-hour check: what shows without scrolling at 1600x1000


def in_view(page, locator, timeout_ms: int = 60_000) -> bool:
    """`locator`'s first match is rendered inside the viewport (visible without scrolling)."""
    first = locator.first
    first.wait_for(state="visible", timeout=timeout_ms)
    box = first.bounding_box()
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    return box is not None and box["x"] >= 0 and box["y"] >= 0 and box["x"] + min(box["width"], 40) <= width \
        and box["y"] + min(box["height"], 40) <= height


@contextlib.contextmanager
def chromium_page(width: int = VIEWPORT[0], height: int = VIEWPORT[1]):
    """A Playwright page in Debian's chromium (headless)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def open_trials_page(page, url: str, run_name: str, timeout_ms: int = 60_000) -> str:
    """Open `url` and wait until the runs table shows `run_name`; returns the page's visible text."""
    page.goto(url)
    page.get_by_text(run_name, exact=False).first.wait_for(timeout=timeout_ms)
    return page.inner_text("body")


def tiny_sweep(folder: Path) -> Path:
    """A few seconds of sweep on synthetic images into folder/mlruns; returns the store's root."""
    import yaml

    from tests.helpers import run_cli, tiny_experiment

    exp = folder / "tiny.yaml"
    exp.write_text(yaml.safe_dump(tiny_experiment(trials=6, repeats=2, train={"epochs": 3})))
    result = run_cli("sweep.py", exp, "--mlruns", folder / "mlruns", env={"AUGSWEEP_NO_BROWSER": "1"})
    if result.returncode != 0:
        raise SystemExit(f"the tiny sweep failed:\n{result.stderr[-3000:]}")
    return folder / "mlruns"


def links_for(mlruns: Path, base_url: str):
    """augsweep's links for the store's (first) study, against the UI at `base_url`."""
    from augsweep.serve.mlflow_ui import all_study_links
    from augsweep.stores.tracking import tracking_uri_for

    return all_study_links(tracking_uri_for(mlruns), base_url)[0]


def shoot(mlruns: Path, out: Path, compare: Path | None = None, plain: Path | None = None,
          curves: Path | None = None) -> None:
    with mlflow_ui(mlruns) as base, chromium_page() as page:
        links = links_for(mlruns, base)
        if plain is not None:  # before: what clicking the experiment in the UI showed
            page.goto(f"{base}/#/experiments/{links.runs.split('/experiments/')[1].split('/')[0]}")
            page.wait_for_timeout(6000)
            page.screenshot(path=str(plain))
        open_trials_page(page, links.runs, links.top[0])  # as a user lands on it: nothing clicked or closed
        page.wait_for_timeout(1500)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": VIEWPORT[0], "height": 470})
        small_png(out)
        if compare is not None and links.compare:
            page.goto(links.compare)
            page.get_by_text(links.top[0]).first.wait_for(state="attached", timeout=60_000)
            page.wait_for_timeout(3000)
            page.screenshot(path=str(compare))  # the first screen at 1600x1000, what shows without scrolling
            small_png(compare)
        if curves is not None and links.curves:
            page.goto(links.curves)
            page.get_by_text(links.top[0]).first.wait_for(timeout=60_000)
            page.wait_for_timeout(3000)
            page.screenshot(path=str(curves))
            small_png(curves)


def small_png(path: Path, colors: int = 64) -> None:
    """Rewrite a screenshot with a small palette (a UI has few colours): ~25 kB for the README."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=colors)
    small.save(path, optimize=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mlruns", type=Path, help="an existing store (default: a tiny sweep in a temporary folder)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "mlflow-trials.png")
    p.add_argument("--compare", type=Path, help="also the compare page of the best trials")
    p.add_argument("--curves", type=Path, help="also the best trials' learning curves in one chart")
    p.add_argument("--before", type=Path, help="also the experiment page as a plain click lands on it")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="augsweep-shot-") as tmp:
        mlruns = args.mlruns or tiny_sweep(Path(tmp))
        shoot(mlruns, args.out, args.compare, args.before, args.curves)
    print(f"screenshot: {args.out}" + (f", {args.compare}" if args.compare else "")
          + (f", {args.before}" if args.before else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
