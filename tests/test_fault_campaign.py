"""The fault campaign: damaged stores, kills at every write of a trial's end, signals mid-trial, a full disk, a
killed report, each on its own copy of a real swept store (the signals mid-trial on a sweep of their own), counted
in one table.

Every fault ends in one of: `refused` (exit 2, one line, the stores unchanged), `survived` (the resume finishes
the budget exactly), `noted` (the report renders, with a note). Asserted over the whole table: 0 store
disagreements (Optuna's COMPLETE trials are exactly MLflow's FINISHED trial runs and the UI's trials view), 0
COMPLETE trials lost (each keeps its curve and its files), every error's first line is its one-line message.

The store faults run in this process (milliseconds each, no training); the faults that need a training in flight
run as real processes, two at a time, and are the `slow` part. The signals mid-trial (Ctrl-C, SIGTERM, kill -9)
start a sweep of their own whose trials report every epoch, so that "mid-training" is seen in the study, not
guessed from a clock: the process completes its first trial, is signalled once the second has reported an epoch,
and each fault also checks what the stores hold between the fault and the resume (the trial failed in both stores
with its reason and queued again, or, after kill -9, left RUNNING until the resume fails it as its dead worker's
and retries it once).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from augsweep.cli import report_main, sweep_main
from tests.helpers import ROOT, read_stores, sweep, tiny_experiment, wait_for_study
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
    shutil.copytree(original, other)
    db = sqlite3.connect(other / "mlflow.db")
    with db:
        db.execute("delete from tags")
        db.execute("delete from runs")
    db.close()
    settle(other)
    table, problems, shown = {}, [], []
    for i, (name, damage, verb, expected) in enumerate(STORE_FAULTS):
        m = tmp_path / f"f{i}" / "mlruns"
        shutil.copytree(original, m)
        settle(m)
        if damage == "other":
            _other_mlflow_db(m, other)
        elif damage == "file":
            shutil.rmtree(m)
            m.write_text("not a folder")
        else:
            damage(m)
        before = state(m)
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


SIGNALS = {"Ctrl-C mid-trial": (signal.SIGINT, 130, "interrupted (Ctrl-C)"),
           "SIGTERM mid-trial": (signal.SIGTERM, 143, "interrupted (SIGTERM)"),
           "kill -9 mid-trial": (signal.SIGKILL, -signal.SIGKILL, None)}
SIGNALLED = 1  # the trial the signal interrupts: the process completed trial 0 before it (kept, not lost)
# The signalled trial is mid-training once it has reported an epoch (a median pruner makes a trial report every
# epoch; with none, a repeat's reports come in one batch at its end), and over 12 epochs it stays there.
MID_TRAINING = ("SELECT count(*) FROM trial_intermediate_values v JOIN trials t ON v.trial_id = t.trial_id "
                f"WHERE t.number = {SIGNALLED} AND t.state = 'RUNNING'")


def _signal_experiment(root: Path) -> Path:
    """Two 12-epoch trials that report every epoch (no pruning before a median pruner's 4 startup trials). The
    interrupted trial is the budget's last: its retry, queued, is what a sweep that trained on would run."""
    path = root / "signal.yaml"
    path.write_text(yaml.safe_dump(tiny_experiment(name="signal", trials=2, train={"epochs": 12},
                                                   pruner="median")))
    return path


def _trial_state(m: Path, number: int) -> str | None:
    with sqlite3.connect(m / "optuna.db", timeout=30) as db:
        row = db.execute("select state from trials where number = ?", (number,)).fetchone()
    return row[0] if row else None


def _signal_mid_trial(path: Path, m: Path, sig: int) -> tuple[subprocess.CompletedProcess, list, int]:
    """`sweep.py` on fresh stores, `sig` once trial SIGNALLED has reported an epoch (kill -9 after freezing the
    process with SIGSTOP and seeing the trial still RUNNING: it cannot finish the trial before the kill)."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "sweep.py"), str(path), "--mlruns", str(m)],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    problems = []
    wait_for_study(proc, m / "optuna.db", MID_TRAINING)
    if sig == signal.SIGKILL:
        proc.send_signal(signal.SIGSTOP)
        if _trial_state(m, SIGNALLED) != "RUNNING":
            problems.append(("not frozen mid-trial", _trial_state(m, SIGNALLED)))
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), problems, proc.pid


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


def _run(args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)


def _report_killed(path: Path, m: Path) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([sys.executable, str(ROOT / "report.py"), str(path), "--mlruns", str(m), "--out",
                             str(m.parent / "out")], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.kill()
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _fault_in_flight(name: str, path: Path, original: Path, root: Path) -> dict:
    """`_inject`, with anything it raised counted as a failure of that fault (the others still run)."""
    try:
        return _inject(name, path, original, root)
    except Exception as e:  # noqa: BLE001 - the table counts it
        return {"name": name, "problems": [("raised", f"{type(e).__name__}: {e}"[:1500])], "m": None}


def _faults_in_flight(names: list[str], path: Path, original: Path, root: Path) -> list[dict]:
    """The faults of `names` one after the other; "resume killed while reaping" starts from a copy of the stores
    the "after" kill left (a resume of those, killed while it reaps the dead trial)."""
    done = []
    for name in names:
        if name == "resume killed while reaping":
            after = next(f for f in done if f["name"] == "kill at end-of-trial write after")
            if after["m"] is None:
                done.append({"name": name, "problems": [("the after kill failed", after["problems"])], "m": None})
                continue
            shutil.copytree(after["m"], root / name.replace(" ", "-") / "mlruns")
        done.append(_fault_in_flight(name, path, original, root / name.replace(" ", "-")))
    return done


def _inject(name: str, path: Path, original: Path, root: Path) -> dict:
    """Inject one fault on a copy of the stores in a real process; what the resume needs to check it."""
    m = root / "mlruns"
    root.mkdir(parents=True, exist_ok=True)
    if name not in ("resume killed while reaping", *SIGNALS):
        shutil.copytree(original, m)
    more = root / "campaign.yaml"  # the same experiment with one more trial (`trials` may change on resume)
    more.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "trials": BUDGET + 1}))
    problems: list = []
    budget, pid = BUDGET, None
    if name.startswith("kill at end-of-trial write "):
        point = name.rsplit(" ", 1)[1]
        fault = _run(["-c", _KILL_AT, str(more), str(m), point])
        budget = BUDGET + 1  # `more`'s budget: one trial beyond the swept store's, killed at its end
        expected = {-signal.SIGKILL}
    elif name == "resume killed while reaping":
        # Starts from the stores the "after" kill left (copied by `_faults_in_flight` before that fault's own
        # resume), so the kill at "after" runs once for both faults.
        fault = _run(["-c", _KILL_REAPING, str(more), str(m)])
        budget = BUDGET + 1
        expected = {-signal.SIGKILL}
        view = read_stores(more, m)  # the dead trial failed in Optuna; its run still says COMPLETE
        if [t.state.name for t in view.trials] != ["COMPLETE"] * BUDGET + ["FAIL"]:
            problems.append(("reaping left", [t.state.name for t in view.trials]))
    elif name in SIGNALS:
        sig, code, _ = SIGNALS[name]
        path = _signal_experiment(root)  # this fault's own sweep, from nothing
        fault, problems, pid = _signal_mid_trial(path, m, sig)
        problems += _signalled_left(name, read_stores(path, m), fault.stderr)
        budget, expected = 2, {code}
    elif name == "disk full mid-sweep":
        settle(m)  # the WALs emptied: the sweep's first writes grow them past the limit
        fault = _run(["-c", _DISK_FULL, str(path), str(m), str(64 * 1024)])
        if not first_line(fault.stderr).startswith("error: disk"):
            problems.append(("not told as a disk failure", first_line(fault.stderr)[:300]))
        budget = 4
        expected = {1}
    elif name == "report killed":
        fault = _report_killed(path, m)
        expected = {-signal.SIGKILL, 0}
    else:
        raise AssertionError(name)
    if fault.returncode not in expected:
        problems.append(("exit", fault.returncode, fault.stderr[-1500:]))
    if fault.returncode not in (0, -signal.SIGKILL) and not first_line(fault.stderr).startswith(FIRST_LINE):
        problems.append(("first line", first_line(fault.stderr)[:300]))
    if "Traceback" in fault.stderr.split("\n", 1)[0]:
        problems.append(("traceback first", fault.stderr[:300]))
    return {"name": name, "problems": problems, "m": m, "budget": budget, "root": root, "path": path, "pid": pid}


def _recover(fault: dict, path: Path) -> tuple[str, str, list]:
    """The user's next command after the fault, in this process through the CLI's entry points (the fault itself
    ran in a real process; the resume needs no interpreter of its own), then the stores checked."""
    name, problems, m = fault["name"], list(fault["problems"]), fault["m"]
    if m is None:
        return name, "failed", problems
    path = fault["path"]  # the campaign's experiment, or the signal faults' own
    if name == "report killed":
        out = fault["root"] / "out"
        code = report_main([str(path), "--mlruns", str(m), "--out", str(out)])
        if code != 0 or not (out / "report.html").is_file():
            problems.append(("report again", code))
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
    """Over 60 s on two cores because the claim is about real processes dying mid-write: each of the 13 faults is
    a fresh interpreter (kill -9 at each end-of-trial store write, a resume killed while reaping, Ctrl-C, SIGTERM
    and kill -9 mid-training, a full disk, a killed report) followed by an in-process resume; two run at a time."""
    path, original = swept
    assert len(STORE_FAULTS) + len(IN_FLIGHT) >= 30
    chained = ("kill at end-of-trial write after", "resume killed while reaping")
    groups = [list(chained)] + [[name] for name in IN_FLIGHT if name not in chained]
    with ThreadPoolExecutor(max_workers=2) as pool:  # two real processes at a time: the machine's two cores
        faults = [fault for done in pool.map(lambda item: _faults_in_flight(item[1], path, original,
                                                                              tmp_path / f"r{item[0]}"),
                                             enumerate(groups)) for fault in done]
    results = [_recover(fault, path) for fault in faults]
    for name, outcome, problems in results:
        print(f"  {name}: {outcome} {problems if problems else ''}")
    table: dict = {}
    for _, outcome, _ in results:
        table[outcome] = table.get(outcome, 0) + 1
    print(f"faults in flight: {len(IN_FLIGHT)}: {table}")
    failed = [(name, problems) for name, outcome, problems in results if outcome != "survived"]
    assert not failed, failed
