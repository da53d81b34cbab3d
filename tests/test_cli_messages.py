"""Bad input answers with one line and exit code 2, naming the file, the key and what was received."""

from __future__ import annotations

import time

import pytest

from tests.helpers import run_cli, run_in_process, tiny_experiment


def _one_line_error(result) -> str:
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("args", [("--trials", "abc"), ("--workers", "x"), ("--bogus",)])
def test_argument_errors_are_one_line(args):
    line = _one_line_error(run_in_process("sweep.py", "experiments/default.yaml", *args))
    assert args[0] in line and "sweep.py --help" in line


def test_report_on_a_missing_file_answers_before_the_heavy_imports(tmp_path):
    started = time.perf_counter()
    line = _one_line_error(run_cli("report.py", tmp_path / "nope.yaml"))
    assert time.perf_counter() - started < 2.5  # TensorFlow, MLflow and Optuna alone take longer than this
    assert "not found" in line and "nope.yaml" in line


def test_empty_experiment_file_says_so(write_experiment):
    path = write_experiment("# only a comment\n")
    line = _one_line_error(run_in_process("report.py", path))
    assert "the file is empty" in line and str(path) in line


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "x y", ""])
def test_unsafe_experiment_names_are_rejected(write_experiment, tmp_path, name):
    path = write_experiment(tiny_experiment(name=name))
    line = _one_line_error(run_in_process("report.py", path, "--mlruns", tmp_path / "mlruns"))
    assert line.startswith("error: name must be") and repr(name) in line and str(path) in line
    assert not (tmp_path / "mlruns").exists() and not (tmp_path.parent / "x").exists()


def test_unsafe_study_name_is_rejected(write_experiment):
    line = _one_line_error(run_in_process("report.py", write_experiment(tiny_experiment()), "--study-name", "../up"))
    assert "--study-name" in line and "'../up'" in line


def test_missing_folder_dataset_names_the_file_and_the_resolved_path(write_experiment, tmp_path):
    exp = tiny_experiment(dataset={"source": "folder", "path": "no/such/folder", "samples": 96})
    exp["dataset"].pop("samples")
    path = write_experiment(exp)
    line = _one_line_error(run_in_process("sweep.py", path, "--mlruns", tmp_path / "mlruns"))
    assert "dataset.path does not exist" in line and "'no/such/folder'" in line
    assert "looked at /" in line and "no/such/folder" in line.split("looked at ")[1] and str(path) in line


def test_ablation_without_a_sweep_prints_the_command_for_this_file(write_experiment, tmp_path):
    path = write_experiment(tiny_experiment(name="nosweep"))
    line = _one_line_error(run_in_process("ablate", path, "--mlruns", tmp_path / "mlruns"))
    assert f"make sweep EXP={path} MLRUNS=" in line  # a command that runs as printed, for this very file


BAD_INPUTS = {
    # the bad inputs: (experiment overrides, what the message must say, what it tells the user to do)
    "missing dataset folder": ({"dataset": {"source": "folder", "path": "no/such/folder", "image_size": [16, 16]}},
                               "dataset.path does not exist", "Point dataset.path at a folder of train/<class>/*"),
    "missing search-space file": ({"search_space": "search_spaces/nope.yaml"},
                                  "search_space file not found", "looked at "),
    "no augmentations": ({"search_space": {"depth": 1, "augmentations": {}}}, "search_space has no augmentations",
                         "Add at least one under search_space.augmentations, e.g. `flip: {mode: [horizontal]}`"),
    "factorial without augmentations": ({"search_space": {"depth": 1, "augmentations": {}}, "sampler": "factorial"},
                                        "sampler: factorial needs augmentations", "Add at least one"),
    "infeasible design": ({"sampler": "factorial", "trials": 3, "search_space": {"depth": 1, "augmentations": {
        "flip": None, "contrast": None, "rotation": None, "brightness": None}}},
        "sampler: factorial cannot fit in trials=3", "Raise trials to at least 8,"),
    "infeasible design, two depths and stop: decided": ({"sampler": "factorial", "stop": "decided", "trials": 16,
                                                          "search_space": {"depth": [2, 3], "augmentations": {
        "flip": None, "contrast": None, "rotation": None, "brightness": None}}},
        "takes 16 runs, and stop: decided needs two blocks of it", "Raise trials to at least 32,"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_fast_and_says_what_to_do(write_experiment, tmp_path, case):
    overrides, what, todo = BAD_INPUTS[case]
    exp = tiny_experiment(**{k: v for k, v in overrides.items() if k != "dataset"})
    if "dataset" in overrides:
        exp["dataset"] = overrides["dataset"]
    path = write_experiment(exp)
    # Fast means "refused before the heavy libraries load" (measured 0.4-0.95 s on an idle 2-core
    # machine); asserted by what Python imported, not by a wall-clock limit that a loaded CI misses.
    result = run_cli("sweep.py", path, "--mlruns", tmp_path / "mlruns", env={"PYTHONPROFILEIMPORTTIME": "1"})
    imported = {ln.split("|")[-1].strip().split(".")[0] for ln in result.stderr.splitlines()
                if ln.startswith("import time:") and "|" in ln}
    heavy = imported & {"tensorflow", "keras", "mlflow", "optuna", "pandas", "jax", "torch", "sklearn"}
    assert not heavy, f"{case}: imported {sorted(heavy)} before refusing"
    result.stderr = "\n".join(ln for ln in result.stderr.splitlines() if not ln.startswith("import time:"))
    line = _one_line_error(result)
    assert what in line and todo in line and str(path) in line, line
    assert not (tmp_path / "mlruns").exists()  # nothing written


# Values once accepted, crashing or run without end; each is refused in one line by the checks the API shares
# (`augsweep.arguments`), before anything is read or written.
BAD_ARGUMENTS = {
    "huge --trials": (["--trials", "99999999999999999999999"], "--trials must be an integer in [1, 100000]"),
    "fractional --trials": (["--trials", "2.5"], "--trials must be an integer"),
    "nan --trials": (["--trials", "nan"], "--trials must be an integer"),
    "too many --workers": (["--workers", "100000"], "--workers must be an integer in [1, "),
    "empty --mlruns": (["--mlruns", ""], "--mlruns must name a folder"),
    "root --mlruns": (["--mlruns", "/"], "--mlruns must not be the filesystem root"),
    "/proc --mlruns": (["--mlruns", "/proc/self"], "--mlruns is under /proc or /sys"),
    "300-character --mlruns": (["--mlruns", "x" * 300], "--mlruns is too long for a path"),
    "empty trial to reproduce": (["reproduce", ""], "needs a trial number"),
    "in-memory storage with workers": (["--storage", "sqlite:///:memory:", "--workers", "2"],
                                       "keeps the study in one process's memory"),
    "file tracking store": (["--tracking-uri", "file:///tmp/augsweep-nowhere"], "file store"),
    "journal on a folder": (["--storage", "journal:/etc"], "journal:PATH must name a journal file"),
    "unsafe study name": (["--study-name", "../x"], "--study-name must be"),
    "huge --repeats": (["ablate", "--repeats", "1000"], "--repeats must be an integer in [1, 100]"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_are_refused_in_one_line_and_write_nothing(write_experiment, tmp_path, monkeypatch, capsys,
                                                                  case):
    from augsweep.cli import main

    args, said = BAD_ARGUMENTS[case]
    verb, args = (args[0], args[1:]) if args[0] in ("ablate", "reproduce") else ("sweep", args)
    path = write_experiment(tiny_experiment(name="args"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    positional = args[:1] if verb == "reproduce" else []  # the trial or variant follows the experiment
    code = main([verb, str(path), *positional, "--mlruns", str(tmp_path / "m"), *args[len(positional):]])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and said in lines[0], err
    assert len(lines[0]) < 400
    assert not (tmp_path / "m").exists() and not list(work.iterdir())  # nothing written, not even in ./
