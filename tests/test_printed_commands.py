"""Every command the sweep and the report print runs as printed in a fresh shell without the virtual environment
activated (PATH without .venv/bin): from the repository root, and from a folder of the user's own outside it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, tiny_experiment

pytestmark = pytest.mark.slow


# The commands printed are the same whatever the experiment's size (`make ui`, `make report`, `make ablate`, and
# the report's `Next:`), so the experiments are the smallest that print them all: one block of a factorial design
# of one augmentation at one depth (two trials of one seed), whose ablation (base and no augmentation, one seed) is
# two trainings. The network does not learn in them, so the report's `Next:` is the sweep's own command (run it
# again after a change). On a factorial design `make sweep`'s defaults (WORKERS=auto, MEMBERS=auto) train in one
# process, and a design of one depth never starts its helper: the printed `make sweep` runs as printed without
# spawning worker processes, whose claims are tests/test_runs_workers.py's.
ONE_SWITCH = {"search_space": {"depth": [1], "augmentations": {"flip": {"mode": ["horizontal"]}}},
              "sampler": "factorial", "ablation": {"repeats": 1, "baselines": False}}


REPORT_FILES = ("report.md", "report.html", "effects.csv", "configurations.csv")


def fresh_shell_env() -> dict:
    """What a new terminal has: no VIRTUAL_ENV, PATH without the venv's bin folder."""
    venv_bin = str(Path(ROOT / ".venv" / "bin"))
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if p and Path(p).resolve() != Path(venv_bin).resolve() and ".venv" not in p]
    keep = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
            and not k.startswith(("PYTEST", "AUGSWEEP_UI"))}
    return {**keep, "PATH": os.pathsep.join(path or ["/usr/bin", "/bin"]), "AUGSWEEP_NO_BROWSER": "1"}


def commands(stdout: str) -> list[str]:
    """The commands in a CLI's output: indented lines that start with `make `, an interpreter path or the
    `augsweep` command's path, and `Next:` lines' backquoted commands (links and `# comments` are not commands)."""
    found = []
    for line in stdout.splitlines():
        stripped = line.strip()
        if line.startswith("  ") and re.match(r"(make |\S*python\S* |\S*/augsweep )", stripped):
            found.append(stripped)
        found += (re.findall(r"`((?:make|\S*python\S*|\S*/augsweep) [^`]+)`", line) if line.startswith("Next:")
                  else [])
    return found


def run_printed(command: str, env: dict, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def serves(command: str, env: dict, url: str, cwd: Path = ROOT) -> int:
    """Start a long-running printed command (`make ui`), wait until `url` answers, then stop it with Ctrl-C."""
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return response.status
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(f"{command} exited {proc.returncode}: {proc.stdout.read()[-2000:]}")
                time.sleep(1)
        raise AssertionError(f"{command} did not serve {url} within 180 s")
    finally:
        os.killpg(proc.pid, 2)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def test_every_printed_command_runs_in_a_fresh_shell(tmp_path):
    """Each printed command (`make ui`, `make report`, `make ablate` and the reports' own next steps) is run as
    printed in a fresh shell from the repository root, each a new interpreter that trains or reports. The first is
    `make sweep EXP=… MLRUNS=…` on fresh stores: the sweep that prints the commands, then its report, whose `Next:`
    prints that very command (to run again after a change), so it is checked to be printed as it ran. A next step
    is run only when it is not a command run before on the same stores. `make sweep` writes its report in its
    own process (`--report`): the printed `make report`, a process of its own, rewrites those files byte for byte.
    Near or over 60 s on two shared cores because each of the four commands is a real process that loads
    TensorFlow or the MLflow server (`make sweep` and `make ablate` each train, then report): about 40 CPU-s."""
    path, mlruns = tmp_path / "exp.yaml", tmp_path / "mlruns"
    path.write_text(yaml.safe_dump(tiny_experiment(name="printed", trials=2, train={"epochs": 1}, **ONE_SWITCH)))
    env = fresh_shell_env()
    assert ".venv" not in env["PATH"] and "VIRTUAL_ENV" not in env

    swept = f"make sweep EXP={path} MLRUNS={mlruns}"
    sweep = run_printed(swept, env)
    assert sweep.returncode == 0, (sweep.stdout[-3000:], sweep.stderr[-3000:])
    assert "2/2 trials finished" in sweep.stdout, sweep.stdout
    printed = commands(sweep.stdout)
    assert swept in printed, (swept, printed)  # the report's next step: the command that just ran, as printed
    assert any(c.startswith("make ui") for c in printed), sweep.stdout
    assert any(c.startswith("make report ") for c in printed) and any(c.startswith("make ablate ") for c in printed)
    assert not [c for c in printed if c.startswith("python ")], printed  # never a bare python
    reports = ROOT / "reports" / "printed"
    written = {name: (reports / name).read_bytes() for name in REPORT_FILES}

    ran, compared = [swept], False
    for command in printed:
        if command in ran:
            continue
        if command.startswith("make ui"):
            assert serves(f"{command} PORT=5077", env, "http://127.0.0.1:5077/health") == 200
            ran.append(command)
            continue
        result = run_printed(command, env)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
        if command.startswith("make report ") and not any(c.startswith("make ablate") for c in ran):
            for name, data in written.items():  # the sweep's own report is the one a report process writes
                assert (reports / name).read_bytes() == data, name
            compared = True
        ran.append(command)
        if "report" in command or "ablate" in command:  # the report prints its own next step: run that too
            for follow in commands(result.stdout):
                if (follow.startswith("make sweep") or follow.startswith("make ablate")) and follow not in ran:
                    again = run_printed(follow, env)
                    assert again.returncode == 0, (follow, again.stdout[-2000:], again.stderr[-2000:])
                    ran.append(follow)
    assert len(ran) >= 4, ran
    assert compared, ran  # `make report` ran on the sweep's stores before the ablation changed them


def minimal_env() -> dict:
    """A new login's environment, as `env -i` leaves it: HOME and a system PATH (no venv, no project variables).
    PYTHONPATH is kept only where it names this checkout: a second checkout sharing another one's environment
    (whose installed package is that other checkout) runs its own code only through it."""
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin", "AUGSWEEP_NO_BROWSER": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    pythonpath = os.environ.get("PYTHONPATH", "")
    if pythonpath and Path(pythonpath.split(os.pathsep)[0]).resolve() == ROOT.resolve():
        env["PYTHONPATH"] = str(ROOT)
    return env


def test_printed_commands_run_from_a_folder_outside_the_repository(tmp_path):
    """An experiment and its stores in the user's own folder, the tool run from there: every printed command
    (the UI, the report, the ablation, the report's next steps) runs as printed from that folder. The sweep, a
    fresh process in a new login's environment, starts with its own line and shows none of TensorFlow's
    start-up chatter (`runtime.filtered_native_stderr`); the commands it and the report print are the installed
    command's verbs, never `sweep.py` or `report.py`. The report's next step here is the very command that
    swept (`augsweep sweep exp.yaml --mlruns mlruns`, to run again after a change), which ran as printed from this
    folder already: a next step is run only when it is not a command run before on the same stores."""
    away = tmp_path / "my-project"
    away.mkdir()
    assert ROOT not in away.parents
    (away / "exp.yaml").write_text(yaml.safe_dump(tiny_experiment(name="away", trials=2, train={"epochs": 1},
                                                                  **ONE_SWITCH)))
    script = Path(sys.executable).with_name("augsweep")
    installed = shlex.quote(str(script)) if script.is_file() else f"{shlex.quote(sys.executable)} -m augsweep"
    env = minimal_env()
    swept = f"{installed} sweep exp.yaml --mlruns mlruns"
    sweep = run_printed(swept, env, cwd=away)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    # The sweep starts with its own line, not TensorFlow's, and none of TensorFlow's start-up chatter shows.
    assert sweep.stdout.startswith("augsweep: study 'away'") and "no GPU found" in sweep.stdout.splitlines()[0]
    for noise in ("absl::InitializeLog", "oneDNN", "cudart_stub", "cuInit", "cpu_feature_guard"):
        assert noise not in sweep.stderr, sweep.stderr
    assert "2/2 trials finished" in sweep.stdout and "sweep.py" not in sweep.stdout and "report.py" not in sweep.stdout
    printed = commands(sweep.stdout)
    assert printed and not [c for c in printed if c.startswith("make ")], sweep.stdout  # no Makefile here
    # the installed command's verbs, by its absolute path, on the user's relative paths
    assert f"{installed} report exp.yaml --mlruns mlruns" in printed, printed
    assert f"{installed} ablate exp.yaml --mlruns mlruns" in printed and f"{installed} ui --mlruns mlruns" in printed

    ran, follows = [swept], []
    for command in printed:
        if " ui " in command:
            assert serves(f"{command} --port 5078", env, "http://127.0.0.1:5078/health", cwd=away) == 200
        else:
            result = run_printed(command, env, cwd=away)
            assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
            if " report " in command:
                assert "report: reports/away/report.html" in result.stdout and "sweep.py" not in result.stdout
            nexts = commands(result.stdout) if " report " in command else []
            follows += nexts
            for follow in nexts:
                if (" ablate " in follow or " sweep " in follow) and follow not in ran:
                    again = run_printed(follow, env, cwd=away)
                    assert again.returncode == 0, (follow, again.stdout[-2000:], again.stderr[-2000:])
                    ran.append(follow)
        ran.append(command)
    steps = [c for c in follows if " ablate " in c or " sweep " in c]
    assert steps and all(c in ran for c in steps) and len(ran) >= 4 and any(" ablate " in c for c in ran), (ran, steps)
    assert (away / "reports" / "away" / "report.html").is_file()
