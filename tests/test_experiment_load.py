"""Experiment and search-space validation: every bad input is one clear line and exit code 2."""

from __future__ import annotations

import pytest
import yaml

from augsweep.experiment import Choice, ConfigError, FloatRange, load_experiment
from tests.helpers import ROOT, run_in_process, tiny_experiment


def test_default_experiment_loads():
    exp = load_experiment(ROOT / "experiments" / "default.yaml")
    assert exp.dataset.source == "digits"
    assert exp.sampler == "factorial" and exp.stop == "decided" and exp.equivalence_margin == 0.05
    params = exp.search_space.augmentation_params()
    # the default experiment: flip, contrast, rotation and warp, at two depths
    assert list(exp.search_space.augmentation_names) == ["flip", "contrast", "rotation", "warp"]
    assert exp.search_space.depth == Choice((2, 3))
    assert params["rotation"]["factor"] == Choice((0.03,))
    assert exp.dataset.train_samples == 150 and exp.repeats == 4
    assert params["warp"]["kind"] == Choice(("translation",))
    assert exp.search_space_path.endswith("search_spaces/default.yaml")
    old = load_experiment(ROOT / "experiments" / "digits-photometric.yaml")  # the earlier default, kept by name
    assert old.search_space.augmentation_params()["rotation"]["factor"] == FloatRange(0.05, 0.15)


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
    ({"search_space": "no/such/space.yaml"},
     "search_space file not found. Received: search_space='no/such/space.yaml'"),
    ({"train": {"epochs": "ten"}}, "train.epochs must be an integer. Received: epochs='ten'"),
    ({"train": {"epoch": 3}}, "train.epoch is not a known key"),
    ({"sampler": "bayes"}, "sampler must be one of ['tpe', 'random', 'grid', 'factorial']. Received: sampler='bayes'"),
    ({"pruner": "asha"},
     "pruner must be one of ['none', 'median', 'successive_halving', 'hyperband']. Received: pruner='asha'"),
    ({"sampler": "factorial", "pruner": "median"}, "pruner must be none with sampler: factorial"),
    ({"repeats": 0}, "repeats must be in [1, 100]. Received: repeats=0"),
    ({"dataset": {"source": "cifar"}},
     "dataset.source must be one of ['digits', 'synthetic', 'folder', 'fashion_mnist']"),
    ({"dataset": {"source": "fashion_mnist", "classes": [5]}},
     "dataset.classes must list at least two labels in [0, 9]. Received: classes=[5]"),
    ({"dataset": {"source": "fashion_mnist", "classes": [5, 10]}},
     "dataset.classes must be in [0, 9]. Received: classes=10"),
    ({"dataset": {"source": "fashion_mnist", "classes": [5, 5]}}, "dataset.classes must not repeat a label"),
    ({"dataset": {"validation": "test"}}, "dataset.validation test is only available with source: fashion_mnist"),
    ({"dataset": {"val_samples": 1}}, "dataset.val_samples must be in [2, 100000000]. Received: val_samples=1"),
    ({"dataset": {"stream": "maybe"}}, "dataset.stream must be one of ['auto', 'true', 'false']"),
    ({"dataset": {"stream": True}}, "dataset.stream is only used with source: folder (source is synthetic)"),
    ({"model": {"base": "vgg17"}}, "model.base must be one of ['convnet', 'vgg16'"),
    ({"model": {"base": "vgg16", "weights": "w.h5"}},
     "model.weights must be imagenet, none or a path ending in .weights.h5 or .keras. Received: weights='w.h5'"),
    ({"model": {"weights": "imagenet"}}, "model.weights imagenet needs a Keras application base"),
    ({"model": {"weights": "w.weights.h5"}}, "model.depth is required for a convnet base loaded from a weights file"),
    ({"model": {"base": "vgg16", "trainable": 0}}, "model.trainable must be in [1, 10000]. Received: trainable=0"),
    ({"model": {"base": "vgg16", "depth": 2}}, "model.depth is only used with base: convnet and a weights file"),
    ({"model": {"base": "mobilenetv2"}}, "dataset.image_size must be at least [32, 32] for model.base: mobilenetv2"),
    ({"model": {"base": "vgg16"}, "dataset": {"image_size": [32, 32]}},
     "depth is not searched with a pretrained base (model.base: vgg16); remove it. Received: depth="),
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
    result = run_in_process("sweep.py", write_experiment(tiny_experiment(**override)), "--mlruns", mlruns)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.stderr
    assert not mlruns.exists()


def test_cli_missing_experiment_and_bad_trials(tmp_path, write_experiment):
    result = run_in_process("sweep.py", tmp_path / "missing.yaml", "--mlruns", tmp_path / "m")
    assert result.returncode == 2 and "experiment file not found" in result.stderr
    result = run_in_process("sweep.py", write_experiment(tiny_experiment()), "--trials", "0",
                            "--mlruns", tmp_path / "m")
    assert result.returncode == 2 and "--trials must be an integer in [1, 100000]. Received: '0'" in result.stderr
    assert not (tmp_path / "m").exists()


def test_makefile_commands_use_only_options_the_clis_accept():
    """`make sweep` / `make ablate` / `make report` must not pass a flag the verbs' parsers reject."""
    import shlex
    import subprocess

    from augsweep.cli import checked_arguments, report_parser, verb_parser

    out = subprocess.run(["make", "-n", "-B", "sweep", "report", "ablate", "REPEATS=3", "VENV=.venv"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    parsers = {"sweep": verb_parser("sweep"), "ablate": verb_parser("ablate"), "report": report_parser()}
    seen = set()
    for line in out.splitlines():
        words = shlex.split(line)
        if "augsweep" not in words:
            continue
        verb = words[words.index("augsweep") + 1]
        args = checked_arguments(parsers[verb], words[words.index("augsweep") + 2:])  # exits 2 on a bad flag
        seen.add(verb)
        if verb == "ablate":
            assert args.ablation and args.repeats == 3
    assert seen == {"sweep", "report", "ablate"}


def without_depth(**overrides) -> dict:
    exp = tiny_experiment(**overrides)
    exp["search_space"].pop("depth")
    return exp


def test_model_and_new_dataset_keys(write_experiment):
    from augsweep.experiment import ModelConfig

    plain = load_experiment(write_experiment(tiny_experiment()))
    assert plain.model == ModelConfig() and not plain.model.uses_base
    assert "model" not in plain.resolved() and "val_samples" not in plain.resolved()["dataset"]  # old studies resume
    exp = load_experiment(write_experiment(without_depth(
        dataset={"source": "fashion_mnist", "image_size": [32, 32], "classes": [5, 6, 7], "validation": "test",
                 "val_samples": 300},
        model={"base": "mobilenetv2", "weights": "none", "trainable": 2},
        search_space={"dense_units": [16, 64], "augmentations": {"flip": None}}), "b.yaml"))
    assert exp.dataset.classes == (5, 6, 7) and exp.dataset.validation == "test" and exp.dataset.val_samples == 300
    assert exp.model == ModelConfig("mobilenetv2", "none", 2) and exp.model.uses_base
    assert exp.search_space.depth == Choice((0,)) and exp.search_space.dense_units == Choice((16, 64))
    assert exp.resolved()["model"]["trainable"] == 2
    frozen = load_experiment(write_experiment(without_depth(
        model={"weights": "base.weights.h5", "depth": 2, "filters": 8},
        search_space={"augmentations": {"flip": None}}), "c.yaml"))
    assert frozen.model.trainable is False and frozen.model.depth == 2  # a loaded base is frozen by default
    assert frozen.model.weights.endswith("base.weights.h5")


def test_pruner_default_and_settings(write_experiment):
    import optuna

    from augsweep.runs.sweep import make_pruner

    base = {k: v for k, v in tiny_experiment().items() if k != "pruner"}
    assert load_experiment(write_experiment(base)).pruner == "median"
    # A factorial design never prunes: a pruned point would be a hole in its block, its effects fitted on survivors.
    factorial = load_experiment(write_experiment({**base, "sampler": "factorial", "trials": 16}, "f.yaml"))
    assert factorial.pruner == "none" and isinstance(make_pruner(factorial), optuna.pruners.NopPruner)
    kinds = {"median": optuna.pruners.MedianPruner, "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
             "hyperband": optuna.pruners.HyperbandPruner, "none": optuna.pruners.NopPruner}
    for name, kind in kinds.items():
        exp = load_experiment(write_experiment({**base, "pruner": name}, f"{name}.yaml"))
        assert exp.pruner == name and isinstance(make_pruner(exp), kind)


def test_an_unknown_key_with_a_line_break_stays_one_line(write_experiment):
    with pytest.raises(ConfigError) as e:
        load_experiment(write_experiment(tiny_experiment(dataset={"\r": None})))
    assert "\r" not in str(e.value) and "dataset.'\\r' is not a known key" in str(e.value)


def _alias_bomb(levels: int, where: str) -> str:
    """A ~1 KB file whose nested aliases stand for 10**levels values (`where`: the key that uses the last one)."""
    lines = ["description:"]
    for i in range(levels):
        items = ", ".join(['"lol"'] * 10 if i == 0 else [f"*l{i - 1}"] * 10)
        lines.append(f"  l{i}: &l{i} [{items}]")
    exp = tiny_experiment(name="bomb")
    text = "\n".join(lines) + "\n" + yaml.safe_dump(exp, sort_keys=False)
    return text.replace("name: bomb", f"name: *l{levels - 1}") if where == "name" else text


@pytest.mark.parametrize("levels, where", [(9, "name"), (9, "description"), (7, "name")])
def test_yaml_aliases_are_counted_before_anything_is_built(write_experiment, levels, where):
    """A 1 KB file of nested aliases ran without end (10**9 values) or printed one error line of 72 MB."""
    import time

    path = write_experiment(_alias_bomb(levels, where))
    assert path.stat().st_size < 2000
    started = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        load_experiment(path)
    assert time.perf_counter() - started < 2
    assert "aliases" in str(e.value) and len(str(e.value)) < 300 and str(path) in str(e.value)


def test_a_few_aliases_are_still_plain_yaml(write_experiment):
    text = yaml.safe_dump(tiny_experiment(name="anchored"), sort_keys=False).replace(
        "learning_rate: 0.003", "learning_rate: &lr 0.003").replace("seed: 0", "seed: 0\ndescription: {lr: *lr}")
    assert load_experiment(write_experiment(text)).train.learning_rate == 0.003


def test_a_key_given_twice_is_refused_with_both_lines(write_experiment):
    path = write_experiment(yaml.safe_dump(tiny_experiment(), sort_keys=False) + "trials: 5\n")
    with pytest.raises(ConfigError, match=r"key 'trials' appears twice \(lines \d+ and \d+\)") as e:
        load_experiment(path)
    assert str(path) in str(e.value)


def test_a_search_space_file_in_json_is_never_echoed(write_experiment, tmp_path):
    """An unknown key's value is not shown: a JSON file named as the search space echoed its token."""
    token = "c2VjcmV0LXRva2VuLTEyMzQ1Njc4OTA="
    space = tmp_path / "space.json"
    space.write_text('{"auths": {"registry.example.com": {"auth": "%s"}}}' % token)
    path = write_experiment(tiny_experiment(search_space=str(space)))
    with pytest.raises(ConfigError, match="auths is not a known key") as e:
        load_experiment(path)
    assert token not in str(e.value) and "registry.example.com" not in str(e.value)


def test_a_huge_value_is_cut_short_in_its_error(write_experiment):
    path = write_experiment(tiny_experiment(name="x" * 900_000))
    with pytest.raises(ConfigError) as e:
        load_experiment(path)
    assert str(e.value).startswith("name must be") and len(str(e.value)) < 400 and str(path) in str(e.value)
