"""The README and the documentation site: the site builds with `mkdocs build --strict` (a broken link, anchor or page
fails), the experiment-file reference it generates names every key of the key table with its default, and the README
stays short, free of process words, and links only to files and pages that exist."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 160
# Words about how the project is made, not about what it does: they mean nothing to a reader of the README.
FORBIDDEN = ("issue", "design " "card", "the course's", "session", "the default before")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once, strictly, into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def test_the_site_builds_strictly_with_every_page(site):
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # mkdocs' !relative and friends
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)
    pages = [next(iter(entry.values())) for entry in config["nav"]]
    for page in pages:
        built = site / ("index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html")
        assert built.is_file(), page
    api = (site / "api" / "index.html").read_text()
    for name in ("load_experiment", "sweep", "report", "Report.augmentation_block", "UserError"):
        assert re.search(rf'id="augsweep\.[a-z.]*\b{re.escape(name)}"', api), name


def _cells(row: str) -> list[str]:
    """The text of each cell of one HTML table row."""
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def test_the_experiment_file_page_lists_every_key_with_its_default(site):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import gen_reference
    finally:
        sys.path.remove(str(ROOT / "docs"))
    from augsweep.experiment.keys import KEYS

    page = (site / "experiment-file" / "index.html").read_text()
    rows = {cells[0]: cells for cells in map(_cells, re.findall(r"<tr>(.*?)</tr>", page, re.S)) if cells}
    assert [key.name for key in KEYS] == [name for name in rows if name in {key.name for key in KEYS}]
    for key in KEYS:
        default = re.sub(r"`", "", gen_reference.default_text(key))
        assert rows[key.name][3] == default, (key.name, rows[key.name])
        assert rows[key.name][4], key.name  # a meaning


def test_the_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; the manual belongs in docs/"


def test_the_readme_has_no_process_words():
    text = README.read_text().lower()
    found = [(word, text[max(0, i - 40):i + 40]) for word in FORBIDDEN for i in [text.find(word)] if i >= 0]
    assert found == []


def test_every_relative_link_in_the_readme_resolves(site):
    text = README.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'(?:src|href)="([^"]+)"', text)
    relative = [link for link in links if not urlparse(link).scheme and not link.startswith("#")]
    assert relative, "the README links into the docs"
    for link in relative:
        path, _, anchor = unquote(link).partition("#")
        target = (ROOT / path).resolve()
        assert target.is_file(), f"README.md links to {link}, which is not a file"
        if target.is_relative_to(ROOT / "docs") and target.suffix == ".md":
            page = target.relative_to(ROOT / "docs").with_suffix("")
            built = site / ("index.html" if page.name == "index" else page / "index.html")
            assert built.is_file(), f"README.md links to {link}, which is not a page of the site"
            if anchor:
                assert f'id="{anchor}"' in built.read_text(), f"README.md links to {link}: no such heading"


def test_the_folder_examples_load_and_point_at_the_readmes_folder(monkeypatch):
    from augsweep.experiment import load_experiment

    monkeypatch.chdir(ROOT)
    flat = load_experiment(ROOT / "experiments" / "folder-flat.yaml")
    split = load_experiment(ROOT / "experiments" / "folder-split.yaml")
    for exp in (flat, split):
        assert exp.dataset.source == "folder" and exp.dataset.path == "data/my-images"
    assert flat.dataset.validation_split is not None and split.dataset.validation_split is None
    assert "experiments/folder-flat.yaml" in README.read_text()
    assert "experiments/folder-split.yaml" in README.read_text()


# How the project is made ("issue" followed by a number, the card it was designed on) is history, and history
# lives in CHANGELOG.md; code, tests, benchmarks and docs speak of what the tool does.
PROCESS_WORDS = re.compile(r"\bissues? #?\d+|\bdesign " + "card|\\bthe " + "mission\\b", re.I)


def test_code_tests_benchmarks_and_docs_carry_no_process_words():
    roots = ("augsweep", "tests", "bench", "docs", "experiments", "deploy")
    files = [p for r in roots for p in (ROOT / r).rglob("*") if p.suffix in {".py", ".md", ".yaml", ".sh", ".ipynb"}]
    files += [ROOT / name for name in ("README.md", "Makefile", "sweep.py", "report.py", "mkdocs.yml")]
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in files if p.is_file()
            for n, line in enumerate(p.read_text(errors="ignore").splitlines(), 1) if PROCESS_WORDS.search(line)]
    assert not hits, "\n".join(hits)
