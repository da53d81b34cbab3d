"""examples/quickstart.ipynb executes end to end (nbclient, a real kernel) on its tiny setting, and is kept in
the repository with its outputs stripped."""

from __future__ import annotations

import json
import re
import shutil

import nbformat
from nbclient import NotebookClient

from tests.helpers import ROOT

NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_quickstart_notebook_executes(tmp_path):
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    nb = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    # The kernel is this interpreter (the project's venv): ipykernel's own kernel spec names sys.executable.
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    texts = json.dumps([o.get("data", {}) for o in outputs])
    assert "turning each augmentation on changes the best validation loss" in texts  # the report's display
    assert "def augmentation_block" in json.dumps([o.get("text", "") for o in outputs])
    assert (tmp_path / "reports" / "quickstart" / "augmentation.keras").is_file()
    shown = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", json.dumps([o.get("data", {}).get("text/html", "")
                                                                              for o in outputs]))
    assert not re.search(r"\bnan\b", shown), shown  # numbers in words are numbers
    assert "no augmentation" in json.dumps([o.get("text", "") for o in outputs])  # the block's standing
