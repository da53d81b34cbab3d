"""The servers of the distributed mode, started on this machine: PostgreSQL (Debian's `postgresql`,
run as the `postgres` user because `initdb`/`pg_ctl` refuse root), an MLflow tracking server with
proxied artifacts on it, and optuna-dashboard (read-only) on the study database. Bound to 127.0.0.1
unless told otherwise. Used by `make cluster-up`/`cluster-down`/`dashboard`, the tests and the bench.

    python -m augsweep.serve.servers up [--dir .cluster] [--pg-port P] [--mlflow-port P] [--dashboard-port P]
    python -m augsweep.serve.servers down [--dir .cluster]
    python -m augsweep.serve.servers dashboard STORAGE [--port P]

Passwords never go on a command line (`ps` shows those): servers and workers read them from a
`pgpass` file (PGPASSFILE), which libpq, and so psycopg, reads.
"""

from __future__ import annotations

import argparse
import glob
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import runtime
from .process import HOST, Service, port_open, stop_group

USER = DATABASE = "augsweep"
# MLflow and Optuna both keep their schema version in an `alembic_version` table: one database each.
MLFLOW_DATABASE = "mlflow"


def pg_bin(name: str) -> str | None:
    """A PostgreSQL server binary: Debian keeps `initdb`/`pg_ctl` under /usr/lib/postgresql/<v>/bin."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return found[-1] if found else shutil.which(name)


def install_postgres() -> None:
    """`apt-get install postgresql` when `initdb` is missing (with sudo unless root)."""
    if pg_bin("initdb"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("PostgreSQL is not installed: apt-get install -y postgresql", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "postgresql"], check=True, env=env)


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and pg_ctl refuse to run as root: run them as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def write_secret(path: Path, text: str) -> None:
    """Write a file only its owner can read, created with that mode (never readable, even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file of the same name keeps its mode through O_CREAT
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _give_to_postgres(*paths: Path) -> None:
    if os.geteuid() == 0:
        for p in paths:
            shutil.chown(p, "postgres", "postgres")


@dataclass
class Postgres:
    """A PostgreSQL cluster in `root/pg` with one password-protected database `augsweep`."""

    root: Path
    port: int
    host: str = HOST
    durable: bool = True  # False (tests, bench): fsync off, for a database thrown away afterwards

    @property
    def data(self) -> Path:
        return self.root / "pg"

    @property
    def pgpass(self) -> Path:
        return self.root / "pgpass"

    @property
    def password(self) -> str:
        return self.pgpass.read_text().strip().rsplit(":", 1)[1]

    def url(self, with_password: bool = False, database: str = DATABASE) -> str:
        auth = f"{USER}:{self.password}" if with_password else USER
        return f"postgresql+psycopg://{auth}@{self.host}:{self.port}/{database}"

    def env(self) -> dict:
        """Environment for a client of this server: libpq finds the password in PGPASSFILE."""
        return {**os.environ, "PGPASSFILE": str(self.pgpass.resolve())}

    def start(self) -> None:
        install_postgres()
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and subprocess.run(_as_postgres(["test", "-x", str(self.root.resolve())])).returncode:
            raise RuntimeError(f"the postgres user cannot reach {self.root.resolve()}: every folder above it must be "
                               f"traversable (chmod o+x), or choose another folder")
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            password = secrets.token_urlsafe(18)
            write_secret(self.pgpass, f"*:*:*:{USER}:{password}\n")  # libpq ignores one others can read
            pwfile = self.root / "pwfile"
            write_secret(pwfile, password + "\n")
            self.data.mkdir(mode=0o700, exist_ok=True)
            _give_to_postgres(self.data, pwfile)
            try:
                subprocess.run(_as_postgres([pg_bin("initdb"), "-D", str(self.data), "-U", USER, "-A", "scram-sha-256",
                                             f"--pwfile={pwfile}", "-E", "UTF8", "--no-instructions"]),
                               check=True, capture_output=True, text=True)
            finally:
                pwfile.unlink()
        log = self.root / "postgres.log"
        log.touch()
        _give_to_postgres(log)
        # No Unix socket (its default folder may not be writable); TCP on 127.0.0.1 only.
        options = (f"-c listen_addresses={self.host} -p {self.port} -c unix_socket_directories='' "
                   f"-c max_connections=300" + ("" if self.durable else " -c fsync=off -c synchronous_commit=off"))
        subprocess.run(_as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(log), "-o", options,
                                     "-w", "-t", "60", "start"]), check=True, capture_output=True, text=True)
        if fresh:
            self._create_database()

    def _create_database(self) -> None:
        for name in (DATABASE, MLFLOW_DATABASE):
            self.create_database(name)

    def create_database(self, name: str) -> str:
        """Another empty database on the same server (tests: one per test); its URL with the password."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=USER, password=self.password, dbname="postgres",
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(with_password=True, database=name)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and port_open(self.port, self.host)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(_as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60",
                                         "stop"]), capture_output=True, text=True)


def mlflow_server(backend_uri: str, artifacts: Path, port: int, log: Path, env: dict | None = None,
                  host: str = HOST) -> Service:
    """`mlflow server` on a database with proxied artifacts (workers need no shared filesystem), 1 worker."""
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    cmd = [mlflow, "server", "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts),
           "--serve-artifacts", "--host", host, "--port", str(port), "--workers", "1"]
    # MLflow 3's GenAI job runner starts a scheduler and several huey consumers (~250 MB each); a sweep's
    # tracking server never queues jobs.
    env = {**(os.environ if env is None else env), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return Service("mlflow server", cmd, f"http://{host}:{port}", log, env)


def dashboard_server(storage: str, port: int, log: Path, env: dict | None = None, host: str = HOST) -> Service:
    """optuna-dashboard (read-only: see `serve_dashboard`) on a study storage."""
    cmd = [sys.executable, "-m", "augsweep.serve.servers", "dashboard", storage, "--host", host, "--port", str(port)]
    return Service("optuna-dashboard", cmd, f"http://{host}:{port}", log, env)


def serve_dashboard(storage: str, host: str, port: int) -> None:
    """optuna-dashboard with every request other than GET/HEAD refused: a dashboard to look at a study,
    not to delete it or edit its notes from a browser."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    import optuna
    from optuna_dashboard import wsgi

    from ..stores.urls import database_engine_kwargs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    app = wsgi(optuna.storages.RDBStorage(storage, engine_kwargs=database_engine_kwargs(storage)))

    def read_only(environ, start_response):
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
            return [b"augsweep serves optuna-dashboard read-only\n"]
        return app(environ, start_response)

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server(host, port, read_only, server_class=Server, handler_class=Quiet)
    print(f"optuna-dashboard (read-only) on http://{host}:{port}/dashboard", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


# ----------------------------------------------------------------------------- the local cluster


@dataclass
class Cluster:
    """`make cluster-up`: PostgreSQL + MLflow server + optuna-dashboard, state under `root` (git-ignored)."""

    root: Path

    def _pidfile(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    def _ports(self) -> dict:
        path = self.root / "ports"
        return dict(line.split("=") for line in path.read_text().split()) if path.exists() else {}

    def _running(self, name: str, marker: str, port: int) -> int | None:
        """The pid of this cluster's `name` server if it is alive, is that server (its command line holds
        `marker`: the pid was not reused by another program) and listens on `port`; else None."""
        pidfile = self._pidfile(name)
        try:
            pid = int(pidfile.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            return None
        return pid if marker in cmdline and port_open(port) else None

    def up(self, pg_port: int, mlflow_port: int, dashboard_port: int) -> dict:
        """Start what is not running yet; what is running (pid + port + process identity) is reported and
        left alone. A failed start stops only the processes this call started."""
        import optuna

        from ..stores.urls import database_engine_kwargs

        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "artifacts").mkdir(exist_ok=True)
        old = self._ports()
        started: list = []  # what this call started, and only that, is stopped if a later step fails
        self.already: list[str] = []
        try:
            pg = Postgres(self.root, int(old.get("pg", pg_port)))
            if pg.running():
                self.already.append(f"postgresql (port {pg.port})")
            else:
                if port_open(pg.port):
                    raise RuntimeError(f"port {pg.port} is in use by another program (PG_PORT=...)")
                pg.start()
                started.append(pg)
            ports = {"mlflow": int(old.get("mlflow", mlflow_port)),
                     "dashboard": int(old.get("dashboard", dashboard_port))}
            (self.root / "ports").write_text(
                f"pg={pg.port}\nmlflow={ports['mlflow']}\ndashboard={ports['dashboard']}\n")
            env = pg.env()
            # The Optuna schema is created here, once, before any worker or the dashboard opens the database.
            os.environ["PGPASSFILE"] = env["PGPASSFILE"]
            optuna.storages.RDBStorage(pg.url(), engine_kwargs=database_engine_kwargs(pg.url())).engine.dispose()
            services = {"mlflow": mlflow_server(pg.url(database=MLFLOW_DATABASE), (self.root / "artifacts").resolve(),
                                                ports["mlflow"], self.root / "mlflow.log", env),
                        "dashboard": dashboard_server(pg.url(), ports["dashboard"], self.root / "dashboard.log", env)}
            markers = {"mlflow": "mlflow server", "dashboard": "augsweep.serve.servers dashboard"}
            for (name, svc), health in zip(services.items(), ("/health", "/api/meta")):
                pid = self._running(name, markers[name], ports[name])
                if pid is not None:
                    self.already.append(f"{name} (pid {pid}, port {ports[name]})")
                    continue
                if port_open(ports[name]):
                    raise RuntimeError(f"port {ports[name]} for {name} is in use by another program")
                svc.start(health=health)
                started.append(svc)
                self._pidfile(name).write_text(str(svc.pid))
        except BaseException:
            for thing in reversed(started):
                thing.stop()
                if isinstance(thing, Service):
                    name = "mlflow" if thing is services.get("mlflow") else "dashboard"
                    self._pidfile(name).unlink(missing_ok=True)
            raise
        return {"storage": pg.url(), "tracking": services["mlflow"].url,
                "dashboard": services["dashboard"].url + "/dashboard", "pgpass": str(pg.pgpass.resolve())}

    def down(self) -> list[str]:
        stopped = []
        markers = {"mlflow": "mlflow server", "dashboard": "augsweep.serve.servers dashboard"}
        ports = self._ports()
        for name in ("dashboard", "mlflow"):
            pidfile = self._pidfile(name)
            if pidfile.exists():
                pid = self._running(name, markers[name], int(ports.get(name, 0)))
                if pid is not None:  # never signal a pid that now belongs to another program
                    stop_group(pid)
                    stopped.append(name)
                pidfile.unlink()
        if ports:
            pg = Postgres(self.root, int(ports["pg"]))
            if (pg.data / "postmaster.pid").exists():
                pg.stop()
                stopped.append("postgresql")
        return stopped


def main(argv=None, prog: str = "python -m augsweep.serve.servers") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start PostgreSQL, an MLflow server and optuna-dashboard on this machine")
    up.add_argument("--dir", default=".cluster")
    up.add_argument("--pg-port", type=int, default=5433)
    up.add_argument("--mlflow-port", type=int, default=5001)
    up.add_argument("--dashboard-port", type=int, default=8080)
    up.add_argument("--experiment", default="experiments/default.yaml")
    down = sub.add_parser("down", help="stop them (data stays in --dir)")
    down.add_argument("--dir", default=".cluster")
    dash = sub.add_parser("dashboard", help="optuna-dashboard, read-only, on a storage URL")
    dash.add_argument("storage")
    dash.add_argument("--host", default=HOST)
    dash.add_argument("--port", type=int, default=8080)
    args = p.parse_args(argv)
    if args.command == "dashboard":
        serve_dashboard(args.storage, args.host, args.port)
        return 0
    cluster = Cluster(Path(args.dir))
    if args.command == "down":
        stopped = cluster.down()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'} (data kept in {args.dir}/)")
        return 0
    try:
        urls = cluster.up(args.pg_port, args.mlflow_port, args.dashboard_port)
    except (RuntimeError, subprocess.CalledProcessError) as e:  # up() already stopped what it started
        detail = getattr(e, "stderr", "") or ""
        print(f"error: cluster-up failed: {e} {detail}".strip(), file=sys.stderr)
        return 1
    if cluster.already:
        print(f"already running (left as they are): {', '.join(cluster.already)}")
    worker = runtime.follow_up("worker", args.experiment, None,
                               f"--storage {urls['storage']} --tracking-uri {urls['tracking']}")
    print(f"""PostgreSQL      {urls['storage']}   (password in {urls['pgpass']})
MLflow server   {urls['tracking']}
optuna-dashboard {urls['dashboard']}

Start workers (each takes trials until the study has `trials` finished; one GPU each with CUDA_VISIBLE_DEVICES):
  export PGPASSFILE={urls['pgpass']}
  {worker}
Stop everything: make cluster-down""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
