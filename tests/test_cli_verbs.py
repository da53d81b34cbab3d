"""The `augsweep` command: one verb per task, each with its own --help; `sweep.py`'s old mode flags still work
with a one-line note naming the verb; printed follow-up commands use the verbs. (The sweep and report verbs run end
to end from a folder outside the repository, printing the verbs' commands and never `sweep.py` or `report.py`:
tests/test_printed_commands.py, as real processes in a new login's environment.)"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from augsweep import cli, runtime
from tests.helpers import ROOT, learning_experiment

VERBS = ("sweep", "report", "ablate", "reproduce", "repair", "worker", "ui", "dashboard", "cluster", "pretrain")


def exit_code(argv) -> int:
    """`cli.main(argv)`'s exit code, whether it returns it or argparse raises it (--help)."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return 0 if e.code is None else e.code


def test_help_lists_every_verb_on_one_line_each_without_heavy_imports():
    code = ("import sys; from augsweep.cli import main; code = main(['--help']); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'mlflow', 'optuna', 'pandas') if m in sys.modules)); "
            "sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "[]", out.stdout  # no TensorFlow, MLflow, Optuna or pandas for --help
    for verb in VERBS:
        assert sum(line.split()[:1] == [verb] for line in lines) == 1, (verb, out.stdout)
    assert set(cli.VERBS) == set(VERBS)


def test_python_m_augsweep_is_the_same_command():
    out = subprocess.run([sys.executable, "-m", "augsweep", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "ablate" in out.stdout, out.stderr


@pytest.mark.parametrize("verb", VERBS)
def test_each_verb_has_its_own_help(verb, capsys):
    assert exit_code([verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: augsweep"), out
    assert verb in out.splitlines()[0]


def test_unknown_verb_and_cluster_without_up_or_down_exit_2(capsys):
    assert exit_code(["sweeep"]) == 2
    assert "unknown verb 'sweeep'" in capsys.readouterr().err
    assert exit_code(["cluster"]) == 2
    assert "up or down" in capsys.readouterr().err


def test_verbs_take_only_their_own_options(capsys):
    assert exit_code(["ablate", "x.yaml", "--trials", "3"]) == 2
    assert "unrecognized arguments: --trials 3" in capsys.readouterr().err
    assert exit_code(["sweep", "x.yaml", "--ablation"]) == 2
    assert exit_code(["worker", "x.yaml"]) == 2  # a worker needs the shared stores
    assert "a worker needs --storage URL and --tracking-uri URI" in capsys.readouterr().err


@pytest.mark.parametrize("flag, verb", [("--ablation", "ablate"), ("--repair", "repair"),
                                        ("--reproduce", "reproduce"), ("--worker", "worker")])
def test_old_flags_print_one_note_naming_the_verb(flag, verb, tmp_path, capsys):
    argv = [str(tmp_path / "missing.yaml"), flag, *(["3"] if flag == "--reproduce" else [])]
    assert cli.sweep_main(argv) == 2  # bad input after the note: the old flag still parses
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"note: `sweep.py {flag}` is `augsweep {verb}` now (see augsweep --help)", err
    assert sum(line.startswith("note:") for line in err) == 1


def test_old_repair_flag_still_reaches_repair(tmp_path, capsys):
    """`sweep.py --repair` and `augsweep repair` do the same (here: refuse an empty --mlruns, nothing written)."""
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(learning_experiment(name="oldflag", trials=2)))
    assert cli.sweep_main([str(path), "--mlruns", str(tmp_path / "m"), "--repair"]) == 2
    err = capsys.readouterr().err
    assert err.count("`augsweep repair`") == 1 and "nothing to repair" in err
    assert cli.main(["repair", str(path), "--mlruns", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "note:" not in err and "nothing to repair" in err


def test_follow_up_commands_are_verbs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # outside the repository: the installed command by its absolute path
    command = runtime.augsweep_command()
    assert Path(shlex.split(command)[0]).is_absolute()
    assert runtime.follow_up("sweep.py", "e.yaml", "m", "", "--ablation") == f"{command} ablate e.yaml --mlruns m"
    assert runtime.follow_up("sweep.py", "e.yaml", "m", "", "--reproduce", "base") == \
        f"{command} reproduce e.yaml base --mlruns m"
    assert runtime.follow_up("report.py", "e.yaml", "m") == f"{command} report e.yaml --mlruns m"
    assert runtime.follow_up("sweep.py", "e.yaml", None, "--storage S --tracking-uri T", "--worker") == \
        f"{command} worker e.yaml --storage S --tracking-uri T"


def test_the_resume_command_after_a_full_disk_repeats_the_verb(monkeypatch, capsys):
    def fails(args):
        raise RuntimeError("finishing the trial failed") from OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "_sweep_stores", fails)
    for argv, said in (([str(ROOT / "augsweep" / "__main__.py"), "sweep", "e.yaml"], "python -m augsweep sweep e.yaml"),
                       (["/opt/venv/bin/augsweep", "ablate", "e.yaml"], "/opt/venv/bin/augsweep ablate e.yaml")):
        monkeypatch.setattr("sys.argv", argv)
        assert cli.main(argv[1:]) == 1
        err = capsys.readouterr().err
        assert f"resume with: {said} (" in err, err


def test_the_api_and_the_command_line_take_the_same_dispatch(monkeypatch, tmp_path, capsys):
    """`augsweep.sweep(workers=2)` and `augsweep sweep --workers 2` reach the same launcher with the same plan
    (one function, `verbs.sweep`, chooses for both); the launcher is replaced by an in-process sweep that records
    its call, so the test stays fast while the stores, the experiment and the checks are real. Every call is on the
    same stores: the dispatch is chosen from the experiment and the arguments, never from the study, so the calls
    after the first take the same path and resume it with nothing left to train."""
    import augsweep
    from augsweep.runs import sweep as sweeps
    from augsweep.runs import workers

    calls = []

    def launcher(exp, stores, n, trials=None, echo=print, rule="", members=1):
        calls.append((n, trials, rule, members, stores.study_name))
        return sweeps.run_sweep(exp, stores, trials=trials, echo=echo, members=members)

    monkeypatch.setattr(workers, "run_workers", launcher)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUGSWEEP_NO_BROWSER", "1")
    Path("exp.yaml").write_text(yaml.safe_dump(learning_experiment(name="dispatch", trials=1,
                                                                   train={"epochs": 1})))
    assert cli.main(["sweep", "exp.yaml", "--mlruns", "cli", "--workers", "2", "--members", "auto"]) == 0
    printed = capsys.readouterr().out
    study = augsweep.sweep("exp.yaml", mlruns="cli", workers=2, members="auto", progress=False)
    assert calls == [(2, None, "", "auto", "dispatch"), (2, None, "", "auto", "dispatch")]
    assert study.finished == 1 and "1/1 trials finished" in printed
    # one process (workers=1) never reaches the launcher, from either entry point
    assert cli.main(["sweep", "exp.yaml", "--mlruns", "cli"]) == 0
    augsweep.sweep("exp.yaml", mlruns="cli", progress=False)
    assert len(calls) == 2
