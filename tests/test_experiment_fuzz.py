"""Fuzzed experiment files (issue 22): every input is either accepted or answered with exit 2 and one
`error:` line, never a traceback, and a refused input writes no store. Hypothesis mutates the tiny
experiment (any key set to any YAML value, keys dropped or added) and also writes arbitrary text; a bounded
number of examples, run in-process through the real `sweep.py` entry point (`--repair`, which validates
the file and the stores and trains nothing)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from augsweep.cli import sweep_main
from tests.helpers import tiny_experiment

BASE = tiny_experiment(name="fuzz")
KEYS = [(k,) for k in BASE] + [(k, sub) for k, v in BASE.items() if isinstance(v, dict) for sub in v] + [
    ("dataset", "path"), ("dataset", "stream"), ("dataset", "follow_symlinks"), ("model",), ("model", "base"),
    ("model", "weights"), ("ablation",), ("stop",), ("equivalence_margin",), ("search_space", "augmentations", "flip"),
    ("search_space", "augmentations", "rotation"), ("search_space", "depth", "high"), ("bogus",)]

scalars = (st.none() | st.booleans() | st.integers(-10**7, 10**7) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(["/etc/hostname", "/dev/zero", "..", "folder", "synthetic",
                                                    "true", "1e309", "!!python/object:os.system", "~"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                           max_size=3), max_leaves=6)


def _set(doc: dict, path: tuple, value) -> dict:
    node = doc
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return doc


@st.composite
def experiment_texts(draw) -> str:
    if draw(st.integers(0, 9)) == 0:  # arbitrary text, YAML or not
        return draw(st.text(max_size=200))
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(KEYS))
        if draw(st.booleans()) and len(path) == 1 and path[0] in doc:
            del doc[path[0]]
        else:
            _set(doc, path, draw(values))
    return yaml.safe_dump(doc, allow_unicode=True)


def _run(text: str, capsys) -> tuple[int, str, Path]:
    tmp = Path(tempfile.mkdtemp(prefix="augsweep-fuzz-"))
    path = tmp / "experiment.yaml"
    path.write_text(text)
    mlruns = tmp / "mlruns"
    code = sweep_main([str(path), "--mlruns", str(mlruns), "--repair"])
    return code, capsys.readouterr().err, mlruns


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(text=experiment_texts())
# found by CI: a search-space path holding a carriage return was printed raw, splitting the error line
@example(text='name: fuzz\ndataset: {source: synthetic, image_size: [16, 16], samples: 96}\nsearch_space: "\\r"\n'
              'trials: 3\n')
def test_every_experiment_file_is_accepted_or_refused_in_one_line_and_writes_nothing(text, capsys):
    code, err, mlruns = _run(text, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err[-2000:], text)  # `--repair` without a study refuses even a valid file
    assert len(lines) == 1 and lines[0].startswith("error: "), (err[-2000:], text)
    assert "Traceback" not in err
    assert not mlruns.exists(), "a refused input wrote a store"
