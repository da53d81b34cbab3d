"""Real servers for the distributed-mode tests and bench: a PostgreSQL in a temporary folder and an
`mlflow server` on it (both on 127.0.0.1, free ports), `--worker` processes, and the storage-only
load harness (many workers on one study, an objective that only sleeps). `worker_here` runs a worker in the
test's own process, where the claim is about a second worker rather than a second interpreter."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from augsweep.serve.process import Service, free_port
from augsweep.serve.servers import MLFLOW_DATABASE, Postgres, mlflow_server, pg_bin
from tests.helpers import cli_command, run_in_process

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Servers:
    """A running PostgreSQL and MLflow server; `database()` hands each test an empty Optuna database."""

    root: Path
    pg: Postgres
    mlflow: Service | None = None
    _n: list = field(default_factory=lambda: [0])

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.url

    def database(self, prefix: str = "study") -> str:
        """A new empty database; its URL without the password (clients read it from PGPASSFILE, which the
        `servers` fixture exports: a password on a command line is what `ps` shows)."""
        self._n[0] += 1
        name = f"{prefix}{self._n[0]}"
        self.pg.create_database(name)
        return self.pg.url(database=name)

    def start_mlflow(self) -> None:
        port = int(self.mlflow.url.rsplit(":", 1)[1]) if self.mlflow else free_port()
        self.mlflow = mlflow_server(self.pg.url(database=MLFLOW_DATABASE), self.root / "artifacts", port,
                                    self.root / "mlflow.log", self.pg.env()).start(timeout=120, health="/health")

    def kill_mlflow(self) -> None:
        """SIGKILL the tracking server (and its uvicorn worker): no clean shutdown."""
        proc = self.mlflow.proc
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self.mlflow.proc = None

    def stop(self) -> None:
        if self.mlflow is not None:
            self.mlflow.stop()
        self.pg.stop()


def start_servers(mlflow: bool = True) -> Servers:
    """PostgreSQL (fsync off: thrown away afterwards) and, with `mlflow`, a tracking server on it."""
    root = Path(tempfile.mkdtemp(prefix="augsweep-servers-"))
    root.chmod(0o755)  # the postgres user runs the server and must reach its data folder
    servers = Servers(root, Postgres(root, free_port(), durable=False))
    try:
        servers.pg.start()
        # Clients in this process and the ones it starts read the password from the file, never from a URL.
        os.environ["PGPASSFILE"] = str(servers.pg.pgpass.resolve())
        (root / "artifacts").mkdir()
        if mlflow:
            servers.start_mlflow()
    except BaseException:
        servers.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return servers


def postgres_available() -> bool:
    return pg_bin("initdb") is not None


# A worker's settings (`start_worker`, `worker_here`): heartbeats every second, stale after three.
WORKER_ENV = {"AUGSWEEP_HEARTBEAT_INTERVAL": "1", "AUGSWEEP_HEARTBEAT_GRACE": "3"}


def start_worker(experiment: Path, cwd: Path, storage: str, tracking_uri: str, host: str | None = None,
                 extra: tuple = ()) -> subprocess.Popen:
    """`python sweep.py EXPERIMENT --storage URL --tracking-uri URI --worker` in its own folder (no shared
    `mlruns/`); `host` makes it look like another machine (dead workers then found by heartbeat only)."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PGPASSFILE": os.environ.get("PGPASSFILE", ""), "TF_CPP_MIN_LOG_LEVEL": "2", **WORKER_ENV,
           "CUDA_VISIBLE_DEVICES": ""}
    if host:
        env["AUGSWEEP_HOST"] = host
    command, extra_env = cli_command("worker")
    return subprocess.Popen([*command, str(experiment), "--storage", storage, "--tracking-uri", tracking_uri, *extra],
                            cwd=cwd, env={**env, **extra_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def worker_here(experiment: Path, cwd: Path, storage: str, tracking_uri: str) -> subprocess.CompletedProcess:
    """`augsweep worker EXPERIMENT --storage URL --tracking-uri URI` run by this process in its own folder: the
    entry function the command calls (`run_in_process`), with `start_worker`'s heartbeat settings, on this machine's
    host name (so a worker of `start_worker(host=...)` is another machine to it). Blocks until the worker ends; call
    it from the main thread (the entry function installs the signal handlers)."""
    cwd.mkdir(parents=True, exist_ok=True)
    return run_in_process("worker", experiment, "--storage", storage, "--tracking-uri", tracking_uri, cwd=cwd,
                          env=WORKER_ENV)


def finish(procs: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str]]:
    """(exit code, output) of every worker; a worker still running after `timeout` s is killed."""
    out = []
    for p in procs:
        try:
            text, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            text, _ = p.communicate()
            text += "\n[killed by the test: timeout]"
        out.append((p.returncode, text))
    return out


# ----------------------------------------------------------------------------- storage-only load


def storage_load(storage_url: str, workers: int, trials: int, sleep: float = 0.005, name: str = "load"):
    """`workers` threads, each with its own Optuna storage, study and start lock (so each is a separate
    database client, as a process would be), run augsweep's real start loop (`runs.sweep.optimize`:
    budget lock, dead-worker reaping, count-then-start) with an objective that only sleeps.

    Returns (seconds, errors, study): `errors` lists every exception a worker raised."""
    import optuna
    import yaml

    from augsweep.experiment import load_experiment
    from augsweep.runs.sweep import _Progress, make_pruner, make_sampler, optimize
    from augsweep.stores.study import make_storage, resolve_stores
    from tests.helpers import tiny_experiment

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "load.yaml"
        path.write_text(yaml.safe_dump(tiny_experiment(name=name, trials=trials)))
        exp = load_experiment(path)
    stores = resolve_stores(exp, storage=storage_url, tracking_uri="http://unused.invalid", study_name=name)
    optuna.create_study(study_name=name, storage=make_storage(storage_url), direction="minimize",
                        load_if_exists=True)  # created once, before the workers

    def objective(trial):
        trial.suggest_int("depth", 1, 4)
        time.sleep(sleep)
        return trial.number * 1e-3

    errors: list[str] = []

    def worker() -> None:
        from augsweep.stores.study import study_locks

        try:
            study = optuna.load_study(study_name=name, storage=make_storage(storage_url),
                                      sampler=make_sampler(exp), pruner=make_pruner(exp))
            start_lock, _ = study_locks(stores)
            try:
                optimize(study, exp, objective, _Progress(trials, 10**6, lambda line: None), trials, start_lock,
                         lambda line: None)
            finally:
                start_lock.close()
        except Exception as e:  # noqa: BLE001 - reported by the caller
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    return seconds, errors, optuna.load_study(study_name=name, storage=make_storage(storage_url))
