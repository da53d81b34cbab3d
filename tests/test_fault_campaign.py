"""The fault campaign: damaged stores, kills at every write of a trial's end, signals mid-trial, a full disk, a killed
report, each on its own copy of a real swept store (its artifacts included: `copy_stores`) (the signals mid-trial on
a sweep of their own), counted in one table.

Every fault ends in one of: `refused` (exit 2, one line, the stores unchanged), `survived` (the resume finishes the
budget exactly), `noted` (the report renders, with a note). Asserted over the whole table: 0 store disagreements
(Optuna's COMPLETE trials are exactly MLflow's FINISHED trial runs and the UI's trials view), 0 COMPLETE trials lost
(each keeps its curve and its files), every error's first line is its one-line message.

The store faults run in this process (milliseconds each, no training); the faults that need a training in flight run
as real processes, two at a time, and are the `slow` part: each is forked from one interpreter that loaded
TensorFlow, Keras, MLflow and Optuna once (`_FORKS`), is killed or signalled as a user's process is, and is followed
by the user's next command in this process. The report is killed as it uploads its files to the sweep's run (its
second upload), and the faults of a trial's end are killed at each store write by wrapping the real client, so every
kill lands at the write it names, not at a moment a clock guessed. The signals mid-trial (Ctrl-C, SIGTERM, kill -9)
start a sweep of their own whose trials report every epoch, so that "mid-training" is seen in the study, not guessed
from a clock: the process completes its first trial, is frozen once the second has reported an epoch, seen still
RUNNING with epochs left to train, signalled and let go, and each fault also checks what the stores hold between the
fault and the resume (the trial failed in both stores with its reason and queued again, or, after kill -9, left
RUNNING until the resume fails it as its dead worker's and retries it once).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from augsweep.cli import report_main, sweep_main
from augsweep.stores.run_files import forget_artifact_repositories
from tests.helpers import ROOT, copy_stores, read_stores, sweep, tiny_experiment, wait_for_study
from tests.test_runs_complete_means_stored import _KILL_AT, _KILL_REAPING, POINTS, assert_stores_agree
from tests.test_stores_integrity import _content

BUDGET = 2  # trials in the swept store every fault starts from
FIRST_LINE = ("error: ", "interrupted: ", "terminated: ")  # how the tool's one-line messages begin


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """(experiment path, mlruns) of a finished sweep of BUDGET trials; copied for each fault, never modified."""
    root = tmp_path_factory.mktemp("campaign")
    path = root / "campaign.yaml"
    path.write_text(yaml.safe_dump(tiny_experiment(name="campaign", trials=BUDGET, train={"epochs": 1},
                                                   dataset={"image_size": [8, 8], "samples": 48})))
    sweep(path, root / "mlruns")
    return path, root / "mlruns"


def lost_complete(path, mlruns) -> list[int]:
    """COMPLETE trials whose run lacks its val_loss curve or its files."""
    view = read_stores(path, mlruns)
    by_id = {r.info.run_id: r for r in view.runs}
    lost = []
    for t in view.trials:
        if t.state.name != "COMPLETE":
            continue
        run = by_id.get(t.user_attrs.get("mlflow_run_id"))
        files = {f.path for f in view.client.list_artifacts(run.info.run_id)} if run is not None else set()
        if run is None or not view.client.get_metric_history(run.info.run_id, "val_loss") or \
                not {"history.csv", "learning_curves.png"} <= files:
            lost.append(t.number)
    return lost


def check_consistent(path, mlruns, budget: int, context) -> None:
    """The stores agree (Optuna, MLflow, the UI's trials view), the budget is exact and no COMPLETE trial lost."""
    view = read_stores(path, mlruns)
    assert_stores_agree(view, context)
    complete = sum(t.state.name == "COMPLETE" for t in view.trials)
    assert complete == budget, (context, complete)
    assert not lost_complete(path, mlruns), context


def state(m: Path):
    """What the stores hold (`_content`: SQLite's logical dump), or their bytes where a database cannot be read."""
    import hashlib

    if not m.is_dir():
        return m.read_bytes()
    try:
        return _content(m)
    except sqlite3.DatabaseError:
        return sorted((str(p.relative_to(m)), hashlib.md5(p.read_bytes()).hexdigest()) for p in m.rglob("*")
                      if p.is_file() and not p.name.endswith(("-wal", "-shm")))


def first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("note: ")]
    return lines[0] if lines else ""


# ----------------------------------------------------------------------------- store faults (in this process)


def settle(m: Path) -> None:
    """Checkpoint both databases' WAL into their files, as a store at rest is: damage to a file then damages the
    data (a garbage `optuna.db` beside a full `-wal` is still a readable database, so SQLite rightly uses it)."""
    for name in ("optuna.db", "mlflow.db"):
        db = sqlite3.connect(m / name)
        db.execute("pragma wal_checkpoint(TRUNCATE)")
        db.close()


def _zero(p: Path) -> None:
    p.write_bytes(b"")


def _garbage(p: Path) -> None:
    p.write_bytes(os.urandom(8192))


def _half(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _drop_wal(m: Path) -> None:
    for p in m.glob("*.db-*"):
        p.unlink()


def _other_mlflow_db(m: Path, other: Path) -> None:
    shutil.copy(other / "mlflow.db", m / "mlflow.db")


def _hostile_uri(m: Path) -> None:
    with sqlite3.connect(m / "mlflow.db") as db:
        db.execute("update runs set artifact_uri = ? where name like 'sweep %'", ((m.parent / "elsewhere").as_uri(),))


def _history_garbage(m: Path) -> None:
    for p in (m / "artifacts").rglob("history.csv"):
        p.write_bytes(b"\xff\xfe not a csv \x00" * 10)


def _artifacts_gone(m: Path) -> None:
    shutil.rmtree(m / "artifacts")


# (name, damage(mlruns), verb, expected): refused = exit 2, one line, nothing written; noted = the report renders
STORE_FAULTS = [
    ("0-byte optuna.db, sweep", lambda m: _zero(m / "optuna.db"), "sweep", "refused"),
    ("0-byte optuna.db, report", lambda m: _zero(m / "optuna.db"), "report", "refused"),
    ("deleted optuna.db, sweep", lambda m: (m / "optuna.db").unlink(), "sweep", "refused"),
    ("garbage optuna.db, sweep", lambda m: _garbage(m / "optuna.db"), "sweep", "refused"),
    ("garbage optuna.db, report", lambda m: _garbage(m / "optuna.db"), "report", "refused"),
    ("half optuna.db, sweep", lambda m: _half(m / "optuna.db"), "sweep", "refused"),
    ("deleted mlflow.db, sweep", lambda m: (m / "mlflow.db").unlink(), "sweep", "refused"),
    ("deleted mlflow.db, report", lambda m: (m / "mlflow.db").unlink(), "report", "refused"),
    ("0-byte mlflow.db, sweep", lambda m: _zero(m / "mlflow.db"), "sweep", "refused"),
    ("0-byte mlflow.db, report", lambda m: _zero(m / "mlflow.db"), "report", "refused"),
    ("garbage mlflow.db, sweep", lambda m: _garbage(m / "mlflow.db"), "sweep", "refused"),
    ("garbage mlflow.db, report", lambda m: _garbage(m / "mlflow.db"), "report", "refused"),
    ("another store's mlflow.db, sweep", "other", "sweep", "refused"),
    ("parent run's artifacts outside the stores, report", _hostile_uri, "report", "refused"),
    ("--mlruns is a file, sweep", "file", "sweep", "refused"),
    ("SQLite side files deleted, report", _drop_wal, "report", "noted"),
    ("garbage history.csv, report", _history_garbage, "report", "noted"),
    ("artifacts folder deleted, report", _artifacts_gone, "report", "noted"),
]


def test_store_faults_are_refused_in_one_line_or_reported_and_never_written(swept, tmp_path, capsys,
                                                                            monkeypatch):
    path, original = swept
    monkeypatch.setenv("AUGSWEEP_NO_BROWSER", "1")
    other = tmp_path / "other"  # an unrelated store: the same experiment swept under another study name
    copy_stores(original, other)
    db = sqlite3.connect(other / "mlflow.db")
    with db:
        db.execute("delete from tags")
        db.execute("delete from runs")
    db.close()
    settle(other)
    table, problems, shown = {}, [], []
    for i, (name, damage, verb, expected) in enumerate(STORE_FAULTS):
        m = tmp_path / f"f{i}" / "mlruns"
        copy_stores(original, m)
        settle(m)
        if damage == "other":
            _other_mlflow_db(m, other)
        elif damage == "file":
            shutil.rmtree(m)
            m.write_text("not a folder")
        else:
            damage(m)
        before = state(m)
        forget_artifact_repositories()
        out = tmp_path / f"f{i}" / "out"
        argv = [str(path), "--mlruns", str(m)] + (["--out", str(out)] if verb == "report" else ["--trials", "3"])
        code = (report_main if verb == "report" else sweep_main)(argv)
        printed = capsys.readouterr()
        lines = [line for line in printed.err.splitlines() if line.strip()]
        after = state(m)
        if expected == "refused":
            outcome = "refused" if code == 2 and len(lines) == 1 and lines[0].startswith("error: ") else "other"
            if after != before or out.exists():
                problems.append((name, "wrote on a refusal"))
        else:
            outcome = "noted" if code == 0 and (out / "report.html").is_file() else "other"
            if "Traceback" in printed.err:
                problems.append((name, "traceback"))
        if outcome != expected:
            problems.append((name, code, printed.err[-500:]))
        shown.append(f"  {name}: {outcome} (exit {code}) {lines[0][:150] if lines else ''}")
        table[outcome] = table.get(outcome, 0) + 1
    with capsys.disabled():
        print("\n".join([f"store faults: {len(STORE_FAULTS)}: {table}", *shown]))
    assert not problems, problems


# ----------------------------------------------------------------------------- faults with a training in flight

# The limit applies to every file the process writes, its stdout and stderr files included (a few KiB: its one line
# is read from there, so a lost line would fail the fault).
_DISK_FULL = r"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from augsweep.cli import sweep_main
sys.exit(sweep_main([sys.argv[1], "--mlruns", sys.argv[2], "--trials", "4"]))
"""


def _env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "AUGSWEEP_NO_BROWSER": "1", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}


# Every fault's process is forked from one interpreter that has loaded the libraries a sweep and a report import
# (TensorFlow, Keras, MLflow, Optuna, pandas; no TensorFlow op run, so no thread pool of its own yet) and nothing of
# augsweep, so a fault's patches (`_KILL_AT`, `_KILL_REAPING`, `_KILL_REPORT`) go in before augsweep loads, as in a
# fresh interpreter. Each fault is a real process of its own (its pid, its start time, its signal handlers, its
# rlimits, its exit status), killed or signalled as the user's would be, without paying TensorFlow's import
# (~6-7 CPU-s) once per fault. What it runs runs as `python -c CODE ARGS` or `python SCRIPT ARGS` runs it: as
# `__main__`, with stdin from /dev/null and stdout and stderr to files, and it exits as that interpreter would
# (sys.exit's code, atexit handlers, an uncaught exception's traceback). The forking interpreter reaps its children
# at once (a killed one is not left a zombie that still looks alive) and says how each ended and its CPU seconds.
_FORKS = r"""
import json, os, select, sys

import keras, mlflow, optuna, pandas, sqlalchemy, tensorflow  # noqa: F401 - loaded once, before any fork


def serve():
    print("ready", flush=True)
    pending = b""
    while True:
        readable = select.select([0], [], [], 0.02)[0]
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            print("exit", pid, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime, flush=True)
        if not readable:
            continue
        data = os.read(0, 1 << 16)
        if not data:
            os._exit(0)
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            pid = os.fork()
            if pid == 0:
                return json.loads(line)
            print("started", pid, flush=True)


job = serve()
for fd, name, flags in ((0, os.devnull, os.O_RDONLY), (1, job["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                        (2, job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
    opened = os.open(name, flags, 0o644)
    os.dup2(opened, fd)
    os.close(opened)
os.chdir(job["cwd"])
sys.argv = job["argv"]
main = {"__name__": "__main__", "__builtins__": __builtins__}
if job["file"] != "<string>":
    main["__file__"] = job["file"]
    sys.path[0] = os.path.dirname(job["file"])
exec(compile(job["source"], job["file"], "exec"), main)
"""


class _Forks:
    """The forking interpreter of `_FORKS`: `start` runs a fault's process."""

    def __init__(self, root: Path):
        self.root = root
        self.exits: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.changed = threading.Condition()
        self.started: queue.Queue = queue.Queue()
        self.starting = threading.Lock()
        self.count = 0
        with open(root / "forks.err", "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", _FORKS], cwd=ROOT, env=_env(), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        if self.proc.stdout.readline() != "ready\n":
            self.proc.kill()
            raise AssertionError((root / "forks.err").read_text()[-1500:])
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            what, pid, *code = line.split()
            if what == "started":
                self.started.put(int(pid))
            else:
                with self.changed:
                    self.exits[int(pid)], self.cpu[int(pid)] = int(code[0]), float(code[1])
                    self.changed.notify_all()

    def start(self, args: list[str]) -> "_Forked":
        """`python ARGS` (`-c CODE ARGS` or `SCRIPT ARGS`) as a fork: its `Popen`-like handle."""
        source, file = (args[1], "<string>") if args[0] == "-c" else (Path(args[0]).read_text(), args[0])
        argv = ["-c", *args[2:]] if args[0] == "-c" else list(args)
        with self.starting:
            self.count += 1
            out, err = self.root / f"p{self.count}.out", self.root / f"p{self.count}.err"
            self.proc.stdin.write(json.dumps({"source": source, "file": file, "argv": argv, "cwd": str(ROOT),
                                              "stdout": str(out), "stderr": str(err)}) + "\n")
            self.proc.stdin.flush()
            pid = self.started.get(timeout=60)
        return _Forked(self, pid, [sys.executable, *args], out, err)

    def run(self, args: list[str]) -> subprocess.CompletedProcess:
        proc = self.start(args)
        out, err = proc.communicate(timeout=600)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        done.pid = proc.pid
        return done

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class _Forked:
    """A fault's process: as much of `subprocess.Popen` as the faults use."""

    def __init__(self, forks: _Forks, pid: int, args: list[str], out: Path, err: Path):
        self.forks, self.pid, self.args, self.out, self.err = forks, pid, args, out, err

    @property
    def returncode(self) -> int | None:
        with self.forks.changed:
            return self.forks.exits.get(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float) -> tuple[str, str]:
        with self.forks.changed:
            if not self.forks.changed.wait_for(lambda: self.pid in self.forks.exits, timeout):
                self.kill()
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self.out.read_text(), self.err.read_text()


SIGNALS = {"Ctrl-C mid-trial": (signal.SIGINT, 130, "interrupted (Ctrl-C)"),
           "SIGTERM mid-trial": (signal.SIGTERM, 143, "interrupted (SIGTERM)"),
           "kill -9 mid-trial": (signal.SIGKILL, -signal.SIGKILL, None)}
SIGNALLED = 1  # the trial the signal interrupts: the process completed trial 0 before it (kept, not lost)
# Each signal lands mid-training as the study shows it: once trial SIGNALLED has reported an epoch (a median pruner
# makes a trial report every epoch; with none, a repeat's reports come in one batch at its end), the process is
# frozen (SIGSTOP), seen RUNNING with fewer epochs reported than it trains, signalled, and let go (SIGCONT): the
# signal is pending from before its next epoch's report, so it cannot land after the training. Four epochs leave
# three epochs' time to freeze it in; the process, frozen, cannot use them up while it is looked at.
SIGNAL_EPOCHS = 4
REPORTED = ("SELECT t.state, count(v.trial_id) FROM trials t LEFT JOIN trial_intermediate_values v "
            f"ON v.trial_id = t.trial_id WHERE t.number = {SIGNALLED} GROUP BY t.trial_id")


def _signal_experiment(root: Path) -> Path:
    """Two trials of SIGNAL_EPOCHS epochs on the swept store's data size (8x8, 48 images), reporting every epoch
    (no pruning before a median pruner's 4 startup trials). The interrupted trial is the budget's last: its retry,
    queued, is what a sweep that trained on would run."""
    path = root / "signal.yaml"
    path.write_text(yaml.safe_dump(tiny_experiment(name="signal", trials=2, train={"epochs": SIGNAL_EPOCHS},
                                                   dataset={"image_size": [8, 8], "samples": 48},
                                                   pruner="median")))
    return path


def _reported(m: Path) -> tuple[str, int] | None:
    """(state, epochs reported) of trial SIGNALLED, or None before it starts."""
    try:
        with contextlib.closing(sqlite3.connect(m / "optuna.db", timeout=30)) as db:
            return db.execute(REPORTED).fetchone()
    except sqlite3.OperationalError:  # tables not created yet
        return None


def _signal_mid_trial(forks: _Forks, path: Path, m: Path, sig: int) -> tuple[subprocess.CompletedProcess, list,
                                                                                int]:
    """`sweep.py` on fresh stores, `sig` once trial SIGNALLED has reported an epoch and, the process frozen, is
    seen RUNNING with fewer than SIGNAL_EPOCHS reported (mid-training; polled every few milliseconds from its
    start, so the freeze lands within an epoch or two of the first report)."""
    proc = forks.start([str(ROOT / "sweep.py"), str(path), "--mlruns", str(m)])
    problems = []
    wait_for_study(proc, m / "optuna.db", f"SELECT count(*) FROM trials WHERE number = {SIGNALLED}")
    end = time.monotonic() + 300  # only turns a hang into a failure
    while (seen := _reported(m)) is None or seen[1] < 1:
        assert proc.poll() is None and time.monotonic() < end, (seen, proc.poll())
        time.sleep(0.002)
    proc.send_signal(signal.SIGSTOP)
    seen = _reported(m)
    if seen is None or seen[0] != "RUNNING" or not 1 <= seen[1] < SIGNAL_EPOCHS:
        problems.append(("not frozen mid-training", seen))
    proc.send_signal(sig)
    if sig != signal.SIGKILL:
        proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=300)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    done.pid = proc.pid
    return done, problems, proc.pid


def _signalled_left(name: str, view, err: str) -> list:
    """What the stores must hold between a signal mid-trial and the resume (empty when they do)."""
    _, _, reason = SIGNALS[name]
    states = [t.state.name for t in view.trials]
    by_id = {r.info.run_id: r for r in view.runs}
    statuses = sorted(r.info.status for r in view.runs)
    if reason is None:  # kill -9: nothing could be written; the trial and its runs are left RUNNING
        if states != ["COMPLETE", "RUNNING"] or statuses != ["FINISHED", "RUNNING", "RUNNING"]:
            return [("kill -9 left", states, statuses)]
        return []
    problems = []
    if "rerun the same command to resume" not in err:
        problems.append(("no resume command", err[-300:]))
    if states != ["COMPLETE", "FAIL", "WAITING"]:  # failed, and queued once more
        return [*problems, ("signal left", states)]
    failed = view.trials[SIGNALLED]
    run = by_id.get(failed.user_attrs.get("mlflow_run_id"))
    if failed.user_attrs.get("failure_reason") != reason:
        problems.append(("trial's reason", failed.user_attrs.get("failure_reason")))
    if run is None or run.data.tags.get("failure_reason") != reason or run.data.tags.get("state") != "FAIL":
        problems.append(("run's tags", run and run.data.tags))
    if statuses != ["FINISHED", "KILLED", "KILLED"]:  # trial 0; the signalled trial's run and the parent
        problems.append(("run statuses", statuses))
    return problems


def _signalled_resumed(name: str, view, said: str, pid: int) -> list:
    """After the resume: the signalled trial failed and retried once with its parameters (after kill -9: failed
    by the resume as its dead worker's, the process named, its run KILLED with the reason)."""
    states = [t.state.name for t in view.trials]
    if states != ["COMPLETE", "FAIL", "COMPLETE"]:
        return [("resumed to", states)]
    dead, retry = view.trials[SIGNALLED], view.trials[SIGNALLED + 1]
    problems = [] if retry.params == dead.params else [("retried with other parameters", retry.params)]
    if len({t.user_attrs["mlflow_run_id"] for t in view.trials}) != len(view.trials):
        problems.append(("a run counted twice", [t.user_attrs["mlflow_run_id"] for t in view.trials]))
    statuses = sorted(r.info.status for r in view.runs)
    if "RUNNING" in statuses:
        problems.append(("runs left RUNNING", statuses))
    if SIGNALS[name][2] is None:
        if statuses != ["FINISHED"] * 3 + ["KILLED"]:  # the parent, trial 0 and the retry; the dead trial's run
            problems.append(("run statuses", statuses))
        run = {r.info.run_id: r for r in view.runs}[dead.user_attrs["mlflow_run_id"]]
        if f"worker process {pid}" not in said or f"queued again as t{SIGNALLED + 1:02d}" not in said:
            problems.append(("not said", said[-1500:]))
        if "is gone" not in dead.user_attrs["failure_reason"] or retry.system_attrs.get("failed_trial") != SIGNALLED:
            problems.append(("dead trial", dead.user_attrs["failure_reason"], retry.system_attrs))
        if run.info.status != "KILLED" or "is gone" not in run.data.tags.get("failure_reason", ""):
            problems.append(("dead run", run.info.status, run.data.tags.get("failure_reason")))
    return problems


# `report.py` killed while it writes into the stores: once its report files are written to --out and the first
# of them is uploaded to the sweep's run, as it uploads the second (the kill is injected by wrapping MLflow's
# client, so the report is killed at that write on purpose, not by timing).
_KILL_REPORT = r"""
import os, signal, sys
from mlflow import MlflowClient

real, calls = MlflowClient.log_artifact, [0]

def killed_at_second_upload(self, *args, **kwargs):
    calls[0] += 1
    if calls[0] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, *args, **kwargs)

MlflowClient.log_artifact = killed_at_second_upload
from augsweep.cli import report_main
sys.exit(report_main([sys.argv[1], "--mlruns", sys.argv[2], "--out", sys.argv[3]]))
"""


def _uploaded(path: Path, m: Path) -> list[str]:
    """The report files uploaded to the sweep's parent run."""
    view = read_stores(path, m)
    forget_artifact_repositories()
    return [f.path for f in view.client.list_artifacts(view.study.user_attrs["mlflow_parent_run_id"], "report")]


def _fault_in_flight(forks: _Forks, name: str, path: Path, original: Path, root: Path) -> dict:
    """`_inject`, with anything it raised counted as a failure of that fault (the others still run)."""
    try:
        return _inject(forks, name, path, original, root)
    except Exception as e:  # noqa: BLE001 - the table counts it
        return {"name": name, "problems": [("raised", f"{type(e).__name__}: {e}"[:1500])], "m": None}


def _faults_in_flight(forks: _Forks, names: list[str], path: Path, original: Path, root: Path) -> list[dict]:
    """The faults of `names` one after the other; "resume killed while reaping" starts from a copy of the stores
    the "after" kill left (a resume of those, killed while it reaps the dead trial)."""
    done = []
    for name in names:
        if name == "resume killed while reaping":
            after = next(f for f in done if f["name"] == "kill at end-of-trial write after")
            if after["m"] is None:
                done.append({"name": name, "problems": [("the after kill failed", after["problems"])], "m": None})
                continue
            copy_stores(after["m"], root / name.replace(" ", "-") / "mlruns")
        done.append(_fault_in_flight(forks, name, path, original, root / name.replace(" ", "-")))
    return done


def _inject(forks: _Forks, name: str, path: Path, original: Path, root: Path) -> dict:
    """Inject one fault on a copy of the stores in a real process; what the resume needs to check it."""
    m = root / "mlruns"
    root.mkdir(parents=True, exist_ok=True)
    if name not in ("resume killed while reaping", *SIGNALS):
        copy_stores(original, m)
    more = root / "campaign.yaml"  # the same experiment with one more trial (`trials` may change on resume)
    more.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "trials": BUDGET + 1}))
    problems: list = []
    budget, pid = BUDGET, None
    if name.startswith("kill at end-of-trial write "):
        point = name.rsplit(" ", 1)[1]
        fault = forks.run(["-c", _KILL_AT, str(more), str(m), point])
        budget = BUDGET + 1  # `more`'s budget: one trial beyond the swept store's, killed at its end
        expected = {-signal.SIGKILL}
    elif name == "resume killed while reaping":
        # Starts from the stores the "after" kill left (copied by `_faults_in_flight` before that fault's own
        # resume), so the kill at "after" runs once for both faults.
        fault = forks.run(["-c", _KILL_REAPING, str(more), str(m)])
        budget = BUDGET + 1
        expected = {-signal.SIGKILL}
        view = read_stores(more, m)  # the dead trial failed in Optuna; its run still says COMPLETE
        if [t.state.name for t in view.trials] != ["COMPLETE"] * BUDGET + ["FAIL"]:
            problems.append(("reaping left", [t.state.name for t in view.trials]))
    elif name in SIGNALS:
        sig, code, _ = SIGNALS[name]
        path = _signal_experiment(root)  # this fault's own sweep, from nothing
        fault, problems, pid = _signal_mid_trial(forks, path, m, sig)
        problems += _signalled_left(name, read_stores(path, m), fault.stderr)
        budget, expected = 2, {code}
    elif name == "disk full mid-sweep":
        settle(m)  # the WALs emptied: the sweep's first writes grow them past the limit
        fault = forks.run(["-c", _DISK_FULL, str(path), str(m), str(64 * 1024)])
        if not first_line(fault.stderr).startswith("error: disk"):
            problems.append(("not told as a disk failure", first_line(fault.stderr)[:300]))
        budget = 4
        expected = {1}
    elif name == "report killed":
        fault = forks.run(["-c", _KILL_REPORT, str(path), str(m), str(root / "out")])
        expected = {-signal.SIGKILL}
        if fault.returncode == -signal.SIGKILL and len(_uploaded(path, m)) != 1:
            problems.append(("not killed mid-upload", _uploaded(path, m)))
    else:
        raise AssertionError(name)
    if fault.returncode not in expected:
        problems.append(("exit", fault.returncode, fault.stderr[-1500:]))
    if fault.returncode not in (0, -signal.SIGKILL) and not first_line(fault.stderr).startswith(FIRST_LINE):
        problems.append(("first line", first_line(fault.stderr)[:300]))
    if "Traceback" in fault.stderr.split("\n", 1)[0]:
        problems.append(("traceback first", fault.stderr[:300]))
    return {"name": name, "problems": problems, "m": m, "budget": budget, "root": root, "path": path, "pid": pid,
            "cpu": forks.cpu.get(fault.pid)}


def _recover(fault: dict, path: Path) -> tuple[str, str, list]:
    """The user's next command after the fault, in this process through the CLI's entry points (the fault itself
    ran in a real process; the resume needs no interpreter of its own), then the stores checked."""
    name, problems, m = fault["name"], list(fault["problems"]), fault["m"]
    forget_artifact_repositories()
    if m is None:
        return name, "failed", problems
    path = fault["path"]  # the campaign's experiment, or the signal faults' own
    if name == "report killed":
        out = fault["root"] / "out"
        code = report_main([str(path), "--mlruns", str(m), "--out", str(out)])
        if code != 0 or not (out / "report.html").is_file():
            problems.append(("report again", code))
        from augsweep.report.write import REPORT_FILES

        files = {f"report/{n}" for n in REPORT_FILES if (out / n).is_file()}
        if not {"report/report.html", "report/report.md"} <= files or set(_uploaded(path, m)) != files:
            problems.append(("uploaded again", sorted(files), _uploaded(path, m)))
    else:
        said = io.StringIO()
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            code = sweep_main([str(path), "--mlruns", str(m), "--trials", str(fault["budget"])])
        if code != 0:
            problems.append(("resume", code, said.getvalue()[-1500:]))
        reconciled = f"written COMPLETE but Optuna failed t{BUDGET:02d}"
        if name == "resume killed while reaping" and reconciled not in said.getvalue():  # says what it reconciled
            problems.append(("not said", reconciled, said.getvalue()[-1500:]))
        if name in SIGNALS:
            problems += _signalled_resumed(name, read_stores(path, m), said.getvalue(), fault["pid"])
    try:
        check_consistent(path, m, fault["budget"], name)
    except AssertionError as e:
        problems.append(("stores", str(e)[:1500]))
    return name, "survived" if not problems else "failed", problems


IN_FLIGHT = ([f"kill at end-of-trial write {p}" for p in POINTS]
             + ["resume killed while reaping", "Ctrl-C mid-trial", "SIGTERM mid-trial", "kill -9 mid-trial",
                "disk full mid-sweep", "report killed"])


@pytest.mark.slow
def test_faults_with_a_training_in_flight_leave_the_stores_agreeing_with_nothing_lost(swept, tmp_path):
    """Each of the 13 faults is a real process (kill -9 at each end-of-trial store write, a resume killed while
    reaping, Ctrl-C, SIGTERM and kill -9 mid-training, a full disk, a report killed mid-upload), forked from one
    interpreter that imported the libraries once, followed by an in-process resume; two run at a time."""
    path, original = swept
    assert len(STORE_FAULTS) + len(IN_FLIGHT) >= 30
    chained = ("kill at end-of-trial write after", "resume killed while reaping")
    groups = [list(chained)] + [[name] for name in IN_FLIGHT if name not in chained]
    forks = _Forks(tmp_path)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:  # two real processes at a time: the machine's two cores
            faults = [fault for done in pool.map(lambda item: _faults_in_flight(forks, item[1], path, original,
                                                                                  tmp_path / f"r{item[0]}"),
                                                 enumerate(groups)) for fault in done]
    finally:
        forks.close()
    results, resumed = [], []
    for fault in faults:
        started = time.process_time()
        results.append(_recover(fault, path))
        resumed.append(time.process_time() - started)
    for fault, took, (name, outcome, problems) in zip(faults, resumed, results):
        print(f"  {name}: {outcome} (its process {fault.get('cpu') or 0:.1f} CPU-s, the resume {took:.1f}) "
              f"{problems if problems else ''}")
    table: dict = {}
    for _, outcome, _ in results:
        table[outcome] = table.get(outcome, 0) + 1
    print(f"faults in flight: {len(IN_FLIGHT)}: {table}")
    failed = [(name, problems) for name, outcome, problems in results if outcome != "survived"]
    assert not failed, failed
