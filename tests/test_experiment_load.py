"""Experiment and search-space validation: every bad input is one clear line and exit code 2."""

from __future__ import annotations

import pytest

from augsweep.experiment import Choice, ConfigError, FloatRange, load_experiment
from tests.helpers import ROOT, run_cli, tiny_experiment


def test_default_experiment_loads():
    exp = load_experiment(ROOT / "experiments" / "default.yaml")
    assert exp.dataset.source == "digits"
    assert exp.sampler == "factorial" and exp.stop == "decided" and exp.equivalence_margin == 0.02
    params = exp.search_space.augmentation_params()
    assert params["rotation"]["factor"] == FloatRange(0.05, 0.15)
    assert exp.dataset.train_samples == 150 and exp.repeats == 4
    assert params["warp"]["kind"] == Choice(("translation",))
    assert exp.search_space_path.endswith("search_spaces/default.yaml")


def test_inline_space_and_defaults(write_experiment):
    exp = load_experiment(write_experiment(tiny_experiment(
        search_space={"depth": 2, "augmentations": {"warp": None, "rotation": {"factor": 0.3}}})))
    params = exp.search_space.augmentation_params()
    assert exp.search_space.depth == Choice((2,))
    assert params["warp"]["kind"] == Choice(("translation",))  # registry default
    assert params["rotation"]["factor"] == Choice((0.3,))  # a single number is fixed
    assert exp.sha256() == load_experiment(write_experiment(tiny_experiment(
        search_space={"depth": 2, "augmentations": {"warp": None, "rotation": {"factor": 0.3}}}), "b.yaml")).sha256()


BAD = [
    ({"search_space": {"depth": 1, "augmentations": {"rotation": {"factor": 1.7}}}},
     "rotation.factor must be in (0, 1]. Received: factor=1.7"),
    ({"search_space": {"depth": 1, "augmentations": {"blur": {}}}},
     "augmentations.blur is not a known augmentation"),
    ({"search_space": {"depth": 1, "augmentations": {"flip": {"mode": ["diagonal"]}}}},
     "flip.mode must be one of ['horizontal', 'vertical', 'both']. Received: mode='diagonal'"),
    ({"search_space": {"depth": 1, "augmentations": {"contrast": {"strength": 0.2}}}},
     "contrast.strength is not a known key"),
    ({"search_space": {"depth": {"low": 3, "high": 1}}}, "depth.high must be >= depth.low"),
    ({"search_space": {"depth": {"low": 1, "high": 6}}}, "depth.high must be in [1, 4] for 16x16 images"),
    ({"search_space": "no/such/space.yaml"}, "search_space file not found. Received: search_space='no/such/space.yaml'"),
    ({"train": {"epochs": "ten"}}, "train.epochs must be an integer. Received: epochs='ten'"),
    ({"train": {"epoch": 3}}, "train.epoch is not a known key"),
    ({"sampler": "bayes"}, "sampler must be one of ['tpe', 'random', 'grid', 'factorial']. Received: sampler='bayes'"),
    ({"pruner": "asha"}, "pruner must be one of"),
    ({"repeats": 0}, "repeats must be in [1, 100]. Received: repeats=0"),
    ({"dataset": {"source": "cifar"}}, "dataset.source must be one of ['digits', 'synthetic', 'folder']"),
    ({"dataset": {"image_size": [32]}}, "dataset.image_size must be [height, width]"),
    ({"dataset": {"source": "folder"}}, "dataset.path is required for source: folder"),
    ({"colour": "red"}, "colour is not a known key"),
]


@pytest.mark.parametrize("override,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_input_message(write_experiment, override, message):
    path = write_experiment(tiny_experiment(**override))
    with pytest.raises(ConfigError) as e:
        load_experiment(path)
    text = str(e.value)
    assert message in text
    assert "\n" not in text
    assert str(path) in text or "search_space" in text


def test_missing_file_and_bad_yaml(tmp_path, write_experiment):
    with pytest.raises(ConfigError, match="experiment file not found"):
        load_experiment(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"experiment is not valid YAML at line 3, column 1"):
        load_experiment(write_experiment("name: x\ndataset: [unclosed\n"))
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_experiment(write_experiment("- a\n- b\n"))


def test_search_space_file_errors_name_that_file(tmp_path, write_experiment):
    space = tmp_path / "space.yaml"
    space.write_text("depth: 1\naugmentations:\n  rotation: {factor: [0.1, 2.0]}\n")
    with pytest.raises(ConfigError) as e:
        load_experiment(write_experiment(tiny_experiment(search_space=str(space))))
    assert "rotation.factor must be in (0, 1]. Received: factor=2.0" in str(e.value)
    assert str(space) in str(e.value)


@pytest.mark.parametrize("override,message", [BAD[0], BAD[1], BAD[6]], ids=["range", "unknown-aug", "no-space-file"])
def test_cli_bad_input_exit_2_one_line_stores_untouched(tmp_path, write_experiment, override, message):
    mlruns = tmp_path / "mlruns"
    result = run_cli("sweep.py", write_experiment(tiny_experiment(**override)), "--mlruns", mlruns)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.stderr
    assert not mlruns.exists()


def test_cli_missing_experiment_and_bad_trials(tmp_path, write_experiment):
    result = run_cli("sweep.py", tmp_path / "missing.yaml", "--mlruns", tmp_path / "m")
    assert result.returncode == 2 and "experiment file not found" in result.stderr
    result = run_cli("sweep.py", write_experiment(tiny_experiment()), "--trials", "0", "--mlruns", tmp_path / "m")
    assert result.returncode == 2 and "--trials must be >= 1. Received: trials=0" in result.stderr
    assert not (tmp_path / "m").exists()


def test_makefile_commands_use_only_options_the_clis_accept():
    """`make sweep` / `make report` must not pass a flag the parsers reject."""
    import shlex
    import subprocess

    from augsweep.cli import report_parser, sweep_parser

    out = subprocess.run(["make", "-n", "-B", "sweep", "report", "ablate", "REPEATS=3", "VENV=.venv"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    parsers = {"sweep.py": sweep_parser(), "report.py": report_parser()}
    seen = set()
    for line in out.splitlines():
        words = shlex.split(line)
        for script, parser in parsers.items():
            if script in words:
                args = parser.parse_args(words[words.index(script) + 1:])  # exits 2 on an unknown flag
                seen.add(script)
                if script == "sweep.py" and args.ablation:
                    assert args.repeats == 3
                    seen.add("ablate")
    assert seen == {"sweep.py", "report.py", "ablate"}
