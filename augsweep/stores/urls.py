"""Store URLs: one password mask for everything printed or logged, and a bounded reachability check of
the servers a sweep is pointed at (bad input exits 2 before anything is written)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from ..experiment.schema import ConfigError

# `make ui`'s address for the embedded store: `make ui PORT=5055` and `make sweep PORT=5055` pass it on, so the
# printed links and each trial's `mlflow_run_url` (optuna-dashboard) name the port the UI really listens on.
LOCAL_UI = os.environ.get("AUGSWEEP_UI_URL") or "http://127.0.0.1:5000"

# A URL in free text: a scheme, `://`, then everything up to white space (a password may hold ':', '/', '@').
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
# user:password@ of such a URL, up to its last '@' (HTTP's rule; SQLAlchemy splits at the first '@', so
# masking up to the last one hides whichever of the two a client would send).
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<password>.*)@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd)=)[^&\s]*")
STATEMENT_TIMEOUT = 120  # seconds: Optuna's and MLflow's statements take milliseconds; one stuck is a lost server
CONNECT_TIMEOUT = 10  # seconds: a database or tracking server that does not answer by then is reported, not waited for
TRACKING_SCHEMES = {"http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc"}


_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)$", re.S)


def check_userinfo(url: str, what: str) -> None:
    """Refuse, before any library parses it, a URL whose user name or password holds an unencoded '@', '/',
    '?' or '#': every parser then splits it somewhere else and prints part of the password as a host or a
    path. The error names the scheme only."""
    m = _SCHEME.match(url)
    if m is None or m["rest"].startswith("/"):  # no authority (sqlite:///PATH, file:///PATH): no userinfo
        return
    rest = m["rest"]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, after = rest[:end], rest[end:]
    if authority.count("@") > 1 or ("@" not in authority and "@" in after):
        raise ConfigError(
            f"{what}: the user name or password holds an unencoded '@', '/', '?' or '#', so the URL cannot be "
            f"split safely; percent-encode them (@ as %40, / as %2F, ? as %3F, # as %23, % as %25). "
            f"Received: {m['scheme']}://*** (not shown)")


def _mask_url(url: str) -> str:
    """One URL with its credentials hidden: SQLAlchemy's own parser renders it (`hide_password`), then any
    password it did not see (an HTTP URL's, up to the last '@'; a `?password=` query) is masked too."""
    out = url
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.password is not None:
            out = parsed.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy knows: the rules below still apply
        pass
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", out)
    return _QUERY_SECRET.sub(lambda m: f"{m.group(1)}***", out)


def mask(text: str | None) -> str:
    """`text` with the password of every URL in it replaced by `***` (user and host kept)."""
    if not text:
        return text or ""
    def one(m) -> str:
        url = m.group(0)
        core = url.rstrip("'\")],.;:>")  # a URL quoted, or closing a sentence or a clause in a message
        return _mask_url(core) + url[len(core):]

    return _URL.sub(one, str(text))


def password_of(url: str) -> str | None:
    """The password a client would send for `url` (SQLAlchemy's parse; else the HTTP userinfo's)."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.password is not None:
            return str(parsed.password)
        query = parsed.query.get("password")
        if query:
            return query if isinstance(query, str) else query[0]
    except Exception:  # noqa: BLE001 - not a database URL
        pass
    match = _USERINFO.match(url or "")
    return match["password"] if match else None


def scrub(text: str, url: str) -> str:
    """An error message about `url`, with its password removed wherever it appears."""
    secret = password_of(url)
    out = mask(str(text))
    return out.replace(secret, "***") if secret else out


def first_line(error: BaseException, url: str) -> str:
    """One line about a connection error (drivers add SQL and background links on later lines)."""
    lines = [line.strip() for line in scrub(str(error), url).splitlines() if line.strip()]
    text = " ".join(lines[:2]) if lines else type(error).__name__
    return text.split("(Background on this error")[0].strip()


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme.split("+")[0].lower()


def database_engine_kwargs(url: str) -> dict:
    """SQLAlchemy engine options for an Optuna storage URL: a bounded connect and stale-connection checks."""
    scheme = scheme_of(url)
    if scheme == "sqlite":
        return {"connect_args": {"timeout": 120}}  # busy timeout: wait for another worker's short write
    if scheme == "postgresql":
        # TCP keepalives find a server that vanished under an open connection in about 10 s (instead of the
        # kernel's 2 hours); a statement that runs past STATEMENT_TIMEOUT is cut rather than waited for.
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT, "keepalives": 1, "keepalives_idle": 5,
                                 "keepalives_interval": 2, "keepalives_count": 3,
                                 "options": f"-c statement_timeout={STATEMENT_TIMEOUT * 1000}"},
                "pool_pre_ping": True}
    if scheme == "mysql":
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}, "pool_pre_ping": True}
    return {}


def check_database(url: str, what: str = "--storage") -> None:
    """Connect once to a database URL (bounded by CONNECT_TIMEOUT); a ConfigError naming the masked URL if
    the scheme is unknown, the driver missing, the server unreachable or the credentials wrong."""
    try:
        import sqlalchemy
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        engine = sqlalchemy.create_engine(url, **database_engine_kwargs(url))
    except (NoSuchModuleError, ArgumentError, ValueError) as e:
        raise ConfigError(f"{what} has an unknown scheme or malformed URL. Received: {mask(url)} "
                          f"({first_line(e, url)})") from None
    except ImportError as e:
        raise ConfigError(f"{what} needs a database driver that is not installed (pip install -e '.[cluster]'). "
                          f"Received: {mask(url)} ({first_line(e, url)})") from None
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except Exception as e:  # noqa: BLE001 - every driver has its own error classes
        raise ConfigError(f"cannot connect to the {what} database {mask(url)}: {first_line(e, url)}") from None
    finally:
        engine.dispose()


def check_tracking(uri: str, what: str = "--tracking-uri") -> None:
    """An MLflow tracking server must answer `/health` within CONNECT_TIMEOUT (no retries: this is a
    check of the input, not of a server that went away mid-sweep); other known schemes are left to MLflow."""
    scheme = scheme_of(uri)
    if scheme == "file" or (not scheme and uri.startswith(("/", "."))):
        raise ConfigError(f"{what} names MLflow's file store, which this MLflow no longer writes; use "
                          f"sqlite:///PATH/mlflow.db or http(s)://HOST:PORT (or --mlruns DIR for the embedded store). "
                          f"Received: {mask(uri)}")
    if scheme not in TRACKING_SCHEMES:
        raise ConfigError(f"{what} has an unknown scheme {scheme!r} (use http(s)://HOST:PORT for an MLflow server). "
                          f"Received: {mask(uri)}")
    if scheme not in ("http", "https"):
        return
    import requests

    try:
        response = requests.get(uri.rstrip("/") + "/health", timeout=CONNECT_TIMEOUT)
    except requests.RequestException as e:
        raise ConfigError(f"the MLflow tracking server {mask(uri)} does not answer: "
                          f"{first_line(e, uri)}") from None
    if response.status_code != 200:
        raise ConfigError(f"the MLflow tracking server {mask(uri)} answered /health with HTTP "
                          f"{response.status_code}; is it an MLflow server?")


def sqlite_file(url: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URL (None for anything else, or an in-memory database)."""
    if not url or not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None
