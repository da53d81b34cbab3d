"""The distributed mode on real servers: PostgreSQL (Optuna RDB storage with heartbeat) and an `mlflow
server` with proxied artifacts, `--worker` processes in separate folders (no shared filesystem), a worker
killed with -9, the tracking server killed and restarted, 32 workers on one study, bad URLs,
`make cluster-up`/`cluster-down`. A worker whose claim is about what it does rather than about its own process (its
exit under kill -9, its heartbeats, its output on a terminal) is this test's process (`worker_here`), through the
entry function `augsweep worker` calls."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from augsweep.serve.process import free_port, port_open
from augsweep.stores.urls import mask
from tests.cluster import ROOT, finish, start_worker, storage_load, worker_here
from tests.helpers import LEARNS, run_cli, run_in_process, tiny_experiment


def write_exp(tmp_path: Path, name: str, **overrides) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tiny_experiment(name=name, **overrides)))
    return path


def read_back(storage: str, tracking_uri: str, name: str):
    """(study, trial runs, parent run) as the servers hold them."""
    study = optuna.load_study(study_name=name, storage=storage)
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    trial_runs = [r for r in runs if r.data.tags.get("kind") == "trial"]
    parent = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    assert len(parent) == 1, "one parent run for the whole study, whatever the number of workers"
    return study, trial_runs, parent[0]


def states(study) -> dict:
    out: dict = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def study_reader(storage: str):
    """name -> its study as the servers hold it now (None until a worker has created it), read through one storage
    client for every poll, as one process watching the study holds one."""
    client = optuna.storages.get_storage(storage)

    def read(name: str):
        try:
            return optuna.load_study(study_name=name, storage=client)
        except KeyError:
            return None

    return read


def wait_for(predicate, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.slow
def test_two_workers_in_separate_folders_share_one_study_and_one_tracking_server(servers, tmp_path):
    """Two is the fewest workers that share a study: both start at once, count the one budget under its start
    lock and write into one parent run. One is a real `augsweep worker` process in its own folder; the other is
    this test's process in another folder, through the entry function the command calls: two processes, two
    folders, one study, one tracking server. (Many more clients racing for the budget: the 32-worker storage load.
    A worker's own process, its exit under kill -9 and its heartbeats: the SIGKILL test.)"""
    storage = servers.database()
    exp = write_exp(tmp_path, "two", trials=5, **LEARNS)  # a network that learns: the report publishes
    proc = start_worker(exp, tmp_path / "machine0", storage, servers.tracking_uri)
    here = worker_here(exp, tmp_path / "machine1", storage, servers.tracking_uri)  # meanwhile, the second worker
    results = [*finish([proc]), (here.returncode, here.stdout + here.stderr)]
    for code, text in results:
        assert code == 0, text[-3000:]
    study, trial_runs, parent = read_back(storage, servers.tracking_uri, "two")
    assert states(study) == {"COMPLETE": 5}, "exactly the budget, across two workers"
    assert {t.user_attrs["worker"]["pid"] for t in study.trials} <= {proc.pid, os.getpid()}
    assert sorted(r.info.status for r in trial_runs) == ["FINISHED"] * 5, "MLflow agrees with Optuna"
    assert sorted(int(r.data.tags["trial"]) for r in trial_runs) == sorted(t.number for t in study.trials)
    assert parent.info.status == "FINISHED"
    for i in range(2):
        assert not (tmp_path / f"machine{i}" / "mlruns").exists(), "no worker kept local stores"
    # The password is never shown: not in output, not in MLflow, not in the study, not on a command line.
    secret = servers.pg.password
    assert secret and all(secret not in text for _, text in results)
    assert secret not in " ".join(proc.args) + " ".join(here.args)
    assert parent.data.tags["optuna_storage"] == mask(storage)
    assert secret not in repr(parent.data.tags) + repr(parent.data.params) + repr(study.user_attrs)
    # optuna-dashboard's view of a trial: its configuration and a link to its run.
    t = study.trials[0]
    assert t.user_attrs["mlflow_run_url"].startswith(servers.tracking_uri + "/#/experiments/")
    assert t.user_attrs["mlflow_run_url"].endswith(t.user_attrs["mlflow_run_id"])
    assert t.user_attrs["config_name"]
    assert study.metric_names == ["val_loss"]
    history = MlflowClient(servers.tracking_uri).get_metric_history(t.user_attrs["mlflow_run_id"], "val_loss")
    assert len(history) == LEARNS["train"]["epochs"]  # one point per epoch
    # The report reads the same servers, and shows no password either (what it answers: its entry function here).
    out = tmp_path / "report"
    rep = run_in_process("report.py", exp, "--storage", storage, "--tracking-uri", servers.tracking_uri, "--out",
                         out, cwd=tmp_path / "machine0")
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert (out / "effects.csv").exists() and secret not in rep.stdout + rep.stderr
    assert not any(secret in f.read_text(errors="ignore") for f in out.rglob("*") if f.is_file())
    # the report publishes on the server too (publishing failures are only a printed warning).
    assert "warning" not in rep.stdout + rep.stderr, rep.stdout[-3000:]
    assert {"augmentation.py", "augmentation.keras"} <= {p.name for p in out.iterdir()}
    _check_published_on_server(servers.tracking_uri, "two", parent, secret)


def _check_published_on_server(tracking_uri: str, name: str, parent, secret: str) -> None:
    """The answer is the experiment's description, the parent run holds the report files, and `<name>-best`
    is registered on the server and loads with `mlflow.keras.load_model` and predicts in a fresh process."""
    from augsweep.stores.registry import NOTE_TAG, SOURCE_TAG

    client = MlflowClient(tracking_uri)
    note = client.get_experiment_by_name(name).tags[NOTE_TAG]
    assert "turning each augmentation on changes the best validation loss" in note, note
    assert "| augmentation" in note and "verdict" in note and f"`{name}-best`" in note
    assert secret not in note
    files = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/effects.csv", "report/augmentation.py",
            "report/augmentation.keras"} <= files, files
    versions = client.search_model_versions(f"name='{name}-best'")
    assert len(versions) == 1 and versions[0].run_id == parent.info.run_id
    assert versions[0].tags[SOURCE_TAG] and secret not in repr(versions[0])
    script = (
        "import mlflow, numpy as np, augsweep.augment\n"
        "augsweep.augment.layers.crop_layer_class()\n"
        f"model = mlflow.keras.load_model('models:/{name}-best/{versions[0].version}')\n"
        "p = np.asarray(model.predict(np.full((3, *model.input_shape[1:]), 0.5, np.float32), verbose=0))\n"
        "assert p.shape[0] == 3 and np.all((p >= 0) & (p <= 1)), p\n"
        "print('predicted', p.ravel().tolist())\n"
    )
    # A fresh process that knows only the server's URL (no PGPASSFILE, no local stores).
    env = {k: v for k, v in os.environ.items() if k != "PGPASSFILE"}
    env.update(MLFLOW_TRACKING_URI=tracking_uri, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                            cwd=ROOT)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "predicted" in loaded.stdout


def test_a_worker_killed_with_sigkill_is_failed_by_heartbeat_retried_and_its_run_killed(servers, tmp_path):
    """A real worker process on "machine-a" is killed with -9 inside a trial; the worker that then takes over is
    this test's process (its own host name: another machine to the victim), so it can find the dead worker only by
    its missing heartbeats. It fails that trial, closes its run KILLED, retries its configuration once and finishes
    the budget."""
    storage = servers.database()
    exp = write_exp(tmp_path, "killed", trials=4, train={"epochs": 2},
                    dataset={"source": "synthetic", "image_size": [16, 16], "samples": 400})
    victim = start_worker(exp, tmp_path / "a", storage, servers.tracking_uri, host="machine-a")

    read = study_reader(storage)

    def victim_trial():
        s = read("killed")
        if s is None:
            return None
        for t in s.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if t.user_attrs.get("worker", {}).get("pid") == victim.pid and "mlflow_run_id" in t.user_attrs:
                return t
        return None

    trial = wait_for(victim_trial, 120, "the victim to be inside a trial")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    assert victim.returncode == -signal.SIGKILL
    survivor = worker_here(exp, tmp_path / "b", storage, servers.tracking_uri)
    text = survivor.stdout + survivor.stderr
    assert survivor.returncode == 0, text[-3000:]
    study = optuna.load_study(study_name="killed", storage=storage)
    dead = study.trials[trial.number]
    assert dead.state == optuna.trial.TrialState.FAIL
    assert "heartbeat" in dead.user_attrs.get("failure_reason", "") or "heartbeat" in text
    assert dead.user_attrs["worker"]["host"] == "machine-a" != study.trials[-1].user_attrs["worker"]["host"]
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == trial.number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE, "retried once"
    assert retries[0].params == dead.params
    assert states(study).get("COMPLETE") == 4 and "RUNNING" not in states(study)
    run = MlflowClient(servers.tracking_uri).get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED"
    assert "heartbeat" in run.data.tags["failure_reason"]
    _, trial_runs, _ = read_back(storage, servers.tracking_uri, "killed")
    assert "RUNNING" not in {r.info.status for r in trial_runs}


class _Retries(logging.Handler):
    """The retries of HTTP calls made by this process (urllib3 logs each one as a warning), kept once `armed`."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.seen: list[str] = []
        self.armed = threading.Event()

    def emit(self, record) -> None:
        if self.armed.is_set() and record.getMessage().startswith("Retrying"):
            self.seen.append(record.getMessage())


@pytest.mark.slow
def test_tracking_server_killed_and_restarted_mid_sweep_loses_no_metric_or_artifact(servers, tmp_path):
    """The worker (this test's process, through the entry function `augsweep worker` calls) trains while the
    tracking server is killed with -9 once a first trial has finished, and restarted as soon as the worker has
    had to retry a call to it (the retry urllib3 logs: a write that found the server gone); every trial then
    holds every metric of every epoch and its artifacts."""
    storage = servers.database()
    epochs = 2
    exp = write_exp(tmp_path, "restart", trials=5, train={"epochs": epochs},
                    dataset={"source": "synthetic", "image_size": [16, 16], "samples": 200})
    read = study_reader(storage)

    def one_complete():
        s = read("restart")
        return 0 if s is None else states(s).get("COMPLETE", 0)

    retries, errors, down_at = _Retries(), [], []
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    saved_level = urllib3_log.level

    def kill_then_restart():
        try:
            wait_for(one_complete, 180, "a first finished trial")
            servers.kill_mlflow()
            retries.armed.set()
            down_at.append(one_complete())
            wait_for(lambda: retries.seen, 180, "the worker to find the tracking server gone")
        except BaseException as e:  # noqa: BLE001 - raised by the test below
            errors.append(e)
        finally:
            if servers.mlflow.proc is None:
                servers.start_mlflow()

    urllib3_log.addHandler(retries)
    urllib3_log.setLevel(logging.WARNING)
    watcher = threading.Thread(target=kill_then_restart, daemon=True)
    watcher.start()
    try:
        result = worker_here(exp, tmp_path / "m0", storage, servers.tracking_uri)
    finally:
        watcher.join(timeout=300)
        urllib3_log.removeHandler(retries)
        urllib3_log.setLevel(saved_level)
    assert not errors, errors
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert down_at[0] < 5, "the server was down while trials still had to log"
    assert "/api/2.0/mlflow" in retries.seen[0], retries.seen  # a call to the tracking server's REST API
    study, trial_runs, parent = read_back(storage, servers.tracking_uri, "restart")
    assert states(study) == {"COMPLETE": 5}
    client = MlflowClient(servers.tracking_uri)
    for t in study.trials:
        run_id = t.user_attrs["mlflow_run_id"]
        assert client.get_run(run_id).info.status == "FINISHED"
        for key in ("loss", "val_loss", "repeat0/val_loss"):
            steps = sorted(m.step for m in client.get_metric_history(run_id, key))
            assert steps == list(range(epochs)), (t.number, key, steps)
        names = {a.path for a in client.list_artifacts(run_id)}
        expected = {"history.csv", "learning_curves.png"}
        if any(v is True for k, v in t.user_attrs["config"].items() if k.startswith("aug_")):
            expected.add("augmentation_preview.png")  # only a trial with an augmentation has a preview
        assert expected <= names, (t.number, names)
    assert parent.info.status == "FINISHED"


class _LosingProxy:
    """A reverse proxy in front of the real tracking server that loses the answer of run creates as told:
    `after` forwards the create and then drops the connection unanswered (the server made the run); `before`
    answers 503 without forwarding it (the server never saw it), as a server restarting under a call does."""

    def __init__(self, upstream: str, faults: list[str]):
        import http.client
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        host, port = upstream.split("//", 1)[1].rsplit(":", 1)
        self.faults, self.creates = list(faults), []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                create = self.path.endswith("/mlflow/runs/create")
                fault = proxy.faults.pop(0) if create and proxy.faults else None
                if create:
                    proxy.creates.append(fault)
                if fault == "before":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                if fault == "after":
                    self.close_connection = True
                    self.connection.shutdown(2)  # the run is made; its answer never arrives
                    return
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["after", "before"])
def test_a_run_create_whose_answer_is_lost_makes_exactly_one_run(servers, fault):
    """A trial's run create that reached the tracking server but lost its answer (connection dropped) is found,
    not made twice; one the server never saw (a 503 from a restarting server) is sent again. MLflow itself
    resends a create only after a refused connection, so without this a restart under the call fails the
    trial."""
    from augsweep.stores.tracking import Tracker

    proxy = _LosingProxy(servers.tracking_uri, [fault])
    try:
        tracker = Tracker(proxy.url, f"lost-answer-{fault}")
        run_id = tracker.start_trial("trial 0", {"lr": 0.01}, {"trial": 0})
    finally:
        proxy.close()
    assert proxy.creates == [fault] + ([None] if fault == "before" else [])
    client = MlflowClient(servers.tracking_uri)
    runs = client.search_runs([tracker.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]
    run = runs[0]
    assert run.info.status == "RUNNING" and run.info.run_name == "trial 0"
    assert run.data.params == {"lr": "0.01"} and run.data.tags["trial"] == "0"


@pytest.mark.slow
def test_storage_only_load_32_workers_exact_budget_no_lock_errors(servers, caplog):
    """32 database clients on one study: every trial start waits on the start lock with 31 others, and at the end
    all 32 race for the last slots of the budget, where a count-then-start race would start one too many. The budget
    is two starts per worker: the end race is the same 32-way race at any budget (each worker counts finished and
    running trials under the lock before it starts one), and 64 trials cost 9 CPU-s where 200 cost 19.
    (`bench/storage.py` runs the same harness at 500 trials for throughput.)"""
    trials = 64
    storage = servers.database("load")
    seconds, errors, study = storage_load(storage, workers=32, trials=trials)
    assert errors == []
    assert states(study) == {"COMPLETE": trials}, "never a trial over the budget, none failed"
    log = caplog.text.lower()
    assert "database is locked" not in log and "deadlock" not in log
    print(f"PostgreSQL bookkeeping: {trials / seconds:.1f} trials/s with 32 workers")


@pytest.mark.parametrize("case", ["unreachable", "wrong_password", "unknown_scheme", "tracking_silent"])
def test_bad_server_urls_exit_2_with_one_masked_line_and_write_nothing(servers, tmp_path, case):
    closed = free_port()
    silent = f"postgresql+psycopg://augsweep:s3cret-pw@127.0.0.1:{closed}/augsweep"
    storage, tracking = servers.database(), servers.tracking_uri
    if case == "unreachable":
        storage = silent
    elif case == "wrong_password":
        storage = storage.replace("augsweep@", "augsweep:s3cret-pw@")
    elif case == "unknown_scheme":
        storage = silent.replace("postgresql+psycopg", "postgrex")
    else:
        tracking = f"http://user:s3cret-pw@127.0.0.1:{closed}"
    # Even a wrong password never goes on a command line: the URLs travel in the environment.
    urls = {"AUGSWEEP_STORAGE": storage, "AUGSWEEP_TRACKING_URI": tracking}
    exp = write_exp(tmp_path, "bad")
    work = tmp_path / "cwd"
    work.mkdir()
    started = time.monotonic()
    result = run_cli("worker", exp, cwd=work, timeout=60, env=urls)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "***" in lines[0] and "s3cret-pw" not in result.stderr + result.stdout
    assert "127.0.0.1" in lines[0]
    assert elapsed < 30
    assert list(work.iterdir()) == [], "nothing written"
    if case == "tracking_silent":
        with pytest.raises(KeyError):
            optuna.load_study(study_name="bad", storage=storage)


@pytest.mark.slow
def test_cluster_up_then_down_serves_the_dashboard_and_leaves_no_process():
    import shutil
    import tempfile

    from augsweep.serve.servers import pg_bin

    if pg_bin("initdb") is None and not os.environ.get("AUGSWEEP_REQUIRE_POSTGRES"):
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    ports = {"PG_PORT": free_port(), "MLFLOW_PORT": free_port(), "DASHBOARD_PORT": free_port()}
    top = Path(tempfile.mkdtemp(prefix="augsweep-cluster-"))
    top.chmod(0o755)  # pytest's tmp_path is private to root; the postgres user must reach the data folder
    cluster = top / "cluster"
    make = ["make", "-s", f"CLUSTER={cluster}", f"PYTHON={sys.executable}",
            *(f"{k}={v}" for k, v in ports.items())]
    up = subprocess.run([*make, "cluster-up"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        assert " worker " in up.stdout and f"http://127.0.0.1:{ports['MLFLOW_PORT']}" in up.stdout
        storage = f"postgresql+psycopg://augsweep@127.0.0.1:{ports['PG_PORT']}/augsweep"
        saved = os.environ.get("PGPASSFILE")
        os.environ["PGPASSFILE"] = str(cluster / "pgpass")
        try:
            optuna.create_study(study_name="seen", storage=storage)
        finally:  # put back the session servers' file (other tests of this process read it)
            if saved is None:
                del os.environ["PGPASSFILE"]
            else:
                os.environ["PGPASSFILE"] = saved
        base = f"http://127.0.0.1:{ports['DASHBOARD_PORT']}"
        for path in ("/dashboard/studies/1", "/api/studies/1"):
            with urllib.request.urlopen(base + path, timeout=10) as r:
                assert r.status == 200
        groups = [int((cluster / f"{n}.pid").read_text()) for n in ("mlflow", "dashboard")]
        postmaster = int((cluster / "pg" / "postmaster.pid").read_text().split()[0])
        # cluster-up again while it is up is a no-op that says so (it used to stop PostgreSQL
        # under live workers); with only the dashboard down it starts the dashboard alone and keeps the rest.
        again = subprocess.run([*make, "cluster-up"], cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
        assert "postgresql" in again.stdout and "mlflow" in again.stdout and "dashboard" in again.stdout
        assert _alive(postmaster)
        assert [int((cluster / f"{n}.pid").read_text()) for n in ("mlflow", "dashboard")] == groups
        from augsweep.serve.process import stop_group

        stop_group(groups[1])
        third = subprocess.run([*make, "cluster-up"], cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert third.returncode == 0, third.stdout + third.stderr
        assert "dashboard" not in third.stdout.split("already running")[1].splitlines()[0]
        new_dashboard = int((cluster / "dashboard.pid").read_text())
        assert new_dashboard != groups[1] and _alive(postmaster)
        assert int((cluster / "mlflow.pid").read_text()) == groups[0]
        groups[1] = new_dashboard
    finally:
        down = subprocess.run([*make, "cluster-down"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        shutil.rmtree(top, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert not _alive(postmaster), "PostgreSQL survived cluster-down"
    for group in groups:  # the MLflow server's and the dashboard's whole process groups (uvicorn workers too)
        assert not [pid for pid, pgrp in _live_processes() if pgrp == group], f"process group {group} survived"
    assert not any(port_open(p) for p in ports.values())


def _live_processes() -> list[tuple[int, int]]:
    """(pid, process group) of every process that is not a zombie."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                out.append((int(d.name), int(fields[2])))
    return out


def _alive(pid: int) -> bool:
    return any(p == pid for p, _ in _live_processes())
