"""The report reads the stores and never trains: no module of `augsweep.report` imports `augsweep.runs` or
`augsweep.training`, at module level or inside a function, directly or through what it imports."""

import ast
import subprocess
import sys
from pathlib import Path

import augsweep

PACKAGE = Path(augsweep.__file__).parent
FORBIDDEN = ("augsweep.runs", "augsweep.training")


def _imports(path: Path, package: str = "augsweep.report") -> set[str]:
    """Absolute names of the modules a file of `package` imports (relative imports resolved)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            out.add(module)
            out |= {f"{module}.{a.name}" for a in node.names}
    return out


def test_report_modules_import_neither_runs_nor_training():
    bad = {f"{p.name}: {m}" for p in sorted((PACKAGE / "report").glob("*.py")) for m in _imports(p)
           if m.startswith(FORBIDDEN)}
    assert not bad, f"the report imports upward: {sorted(bad)}"


def test_importing_the_report_loads_neither_runs_nor_training():
    modules = ", ".join(f"augsweep.report.{p.stem}" for p in sorted((PACKAGE / "report").glob("*.py")))
    code = (f"import sys, importlib\nfor m in '{modules}'.split(', '): importlib.import_module(m)\n"
            f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_import_check_sees_an_upward_import_inside_a_function(tmp_path):
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    from ..runs.ablation import run_ablation\n    from .. import training\n")
    assert {"augsweep.runs.ablation", "augsweep.training"} <= _imports(fake)


# The report is one way through: `load` (sweep_load, ablation_load) alone reads the stores; what comes after it
# (analysis, words, figures and rendering), and the statistics it uses, reads only the loaded values.
PURE = [*(f"augsweep.report.{m}" for m in ("inputs", "analysis", "sweep_analysis", "ablation_analysis", "stats",
                                           "budget", "configurations", "words", "sweep_words", "ablation_words",
                                           "next_steps", "figures", "render", "export")),
        "augsweep.learned", "augsweep.plots",
        *(f"augsweep.inference.{p.stem}" for p in sorted((PACKAGE / "inference").glob("*.py")) if p.stem != "__init__")]


def _file(module: str) -> Path:
    path = PACKAGE.joinpath(*module.split(".")[1:])
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"


def test_analysis_words_and_rendering_import_nothing_from_the_stores():
    bad = {f"{m}: {i}" for m in PURE for i in _imports(_file(m), m.rsplit(".", 1)[0])
           if i.startswith("augsweep.stores")}
    assert not bad, f"a stage after the load step reads the stores: {sorted(bad)}"
    code = (f"import sys, importlib\nfor m in {PURE!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.startswith('augsweep.stores')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_only_the_load_modules_read_the_stores():
    readers = {p.stem for p in sorted((PACKAGE / "report").glob("*.py"))
               if any(m.startswith("augsweep.stores") for m in _imports(p))}
    # write and publish hand the stores to the load step and publish the answer back to MLflow
    assert readers == {"sweep_load", "ablation_load", "load", "write", "publish"}, readers
