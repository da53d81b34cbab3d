"""Password masking and URL checks (no server needed)."""

from __future__ import annotations

import pytest

from augsweep.experiment.schema import ConfigError
from augsweep.stores.tracking import str_values
from augsweep.stores.urls import check_database, check_tracking, first_line, mask, scrub


@pytest.mark.parametrize("url, masked", [
    ("postgresql+psycopg://alice:pw@db:5432/study", "postgresql+psycopg://alice:***@db:5432/study"),
    ("http://bob:p:a@ss@mlflow:5000", "http://bob:***@mlflow:5000"),
    ("postgresql+psycopg://alice@db/study", "postgresql+psycopg://alice@db/study"),
    ("sqlite:////tmp/x/optuna.db", "sqlite:////tmp/x/optuna.db"),
    ("error in mysql://u:secret@h/db and http://v:other@h2", "error in mysql://u:***@h/db and http://v:***@h2"),
    # every form SQLAlchemy accepts: '/' and '@' in a password, percent-encoding, a query password.
    ("postgresql+psycopg://alice:pa/ss@db:5432/study", "postgresql+psycopg://alice:***@db:5432/study"),
    ("postgresql+psycopg://alice:a/b@c@db/study", "postgresql+psycopg://alice:***@db/study"),
    ("postgresql://alice:p%40w%2Fx@db/study?sslmode=require", "postgresql://alice:***@db/study?sslmode=require"),
    ("postgresql://db/study?user=alice&password=hunter22", "postgresql://db/study?user=alice&password=***"),
    ("storage='postgresql://u:a/b@h/db'.", "storage='postgresql://u:***@h/db'."),
    ("database postgresql+psycopg://u:pw@h:1/db: (driver) failed",
     "database postgresql+psycopg://u:***@h:1/db: (driver) failed"),
])
def test_mask_hides_every_password_and_keeps_user_and_host(url, masked):
    assert mask(url) == masked


def test_scrub_removes_a_password_a_driver_repeats_outside_the_url():
    url = "postgresql://alice:hunter22@db/x"
    assert "hunter22" not in scrub("password hunter22 rejected for postgresql://alice:hunter22@db/x", url)
    assert first_line(ValueError("line one\nline two\nline three"), url) == "line one line two"


def test_tags_and_params_are_sent_as_strings():
    assert str_values({"trial": 3, "budget": 10, "ok": True, "none": None}) == {
        "trial": "3", "budget": "10", "ok": "True", "none": "None"}


def test_unknown_schemes_are_bad_input_with_the_url_masked():
    with pytest.raises(ConfigError, match=r"unknown scheme.*nosuch://u:\*\*\*@h/db") as e:
        check_database("nosuch://u:pw@h/db")
    assert "pw@" not in str(e.value)
    with pytest.raises(ConfigError, match="unknown scheme 'ftp'"):
        check_tracking("ftp://u:pw@h")


def test_a_tracking_server_that_stays_away_fails_the_call_with_one_clear_masked_reason(monkeypatch):
    import time

    from augsweep.serve.process import free_port
    from augsweep.stores.tracking import TrackingUnavailable, answering, client_for

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # the bound, shortened for the test
    uri = f"http://user:pw-123@127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable) as e:
        with answering(uri):
            client_for(uri).get_run("0" * 32)
    assert time.monotonic() - started < 20, "bounded, not hung"
    message = str(e.value)
    assert message.startswith("MLflow tracking server http://user:***@127.0.0.1:") and "did not answer" in message
    assert "pw-123" not in message and "\n" not in message


def test_a_password_with_a_slash_never_reaches_a_stores_label_or_tag(tmp_path):
    """`optuna_storage` (an MLflow tag) and every printed option come from `storage_label`."""
    from augsweep.stores.study import Stores

    url = "postgresql+psycopg://augsweep:se/cr@et@127.0.0.1:5432/augsweep"
    stores = Stores(tmp_path, url, "http://u:an/other@127.0.0.1:5001", None, "s", embedded_study=False,
                    embedded_tracking=False)
    shown = stores.storage_label + stores.tracking_label + stores.options()
    assert "se/cr" not in shown and "cr@et" not in shown and "an/other" not in shown
    assert stores.storage_label == "postgresql+psycopg://augsweep:***@127.0.0.1:5432/augsweep"


# Passwords `Pa/ss@wo%rd-Q7x` and `Tk/a@b%c-9` written raw: every parser splits such a URL somewhere else and
# printed part of the password as a host or a path; refused before any library sees the URL.
RAW_PASSWORDS = [("--storage", "postgresql+psycopg://tester:Pa/ss@wo%rd-Q7x@127.0.0.1:5449/t2", "Pa/ss@wo%rd-Q7x"),
                 ("--tracking-uri", "http://trk:Tk/a@b%c-9@127.0.0.1:5019", "Tk/a@b%c-9"),
                 ("--storage", "postgresql://u:two@ats@db/x", "two@ats"),
                 ("--tracking-uri", "https://u:q?uery@h", "q?uery"),
                 ("--storage", "mysql://u:ha#sh@h/db", "ha#sh")]


def _pieces(secret: str) -> set[str]:
    """Every run of 3 or more characters of the password (a leak of a part is a leak)."""
    return {secret[i:j] for i in range(len(secret)) for j in range(i + 3, len(secret) + 1)}


@pytest.mark.parametrize("option, url, secret", RAW_PASSWORDS)
def test_an_unencoded_at_or_slash_in_a_password_is_refused_and_no_part_of_it_printed(
        tmp_path, capsys, write_experiment, option, url, secret):
    from augsweep.cli import sweep_main
    from tests.helpers import tiny_experiment

    path = write_experiment(tiny_experiment(name="raw"))
    code = sweep_main([str(path), "--mlruns", str(tmp_path / "m"), option, url])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "percent-encode" in lines[0] and option in lines[0], err
    assert not [p for p in _pieces(secret) if p in err and p not in url.split(":")[0]], err
    assert not (tmp_path / "m").exists()


def test_the_same_urls_percent_encoded_pass_the_check():
    from augsweep.stores.urls import check_userinfo

    check_userinfo("postgresql+psycopg://tester:Pa%2Fss%40wo%25rd-Q7x@127.0.0.1:5449/t2", "--storage")
    check_userinfo("http://trk:Tk%2Fa%40b%25c-9@127.0.0.1:5019", "--tracking-uri")
    check_userinfo("sqlite:////tmp/a@b/optuna.db", "--storage")  # no authority: an '@' in a path is a path


def test_the_api_refuses_them_too(tmp_path):
    import augsweep

    for kwargs in ({"storage": RAW_PASSWORDS[0][1]}, {"tracking_uri": RAW_PASSWORDS[1][1]}):
        with pytest.raises(augsweep.UserError, match="percent-encode") as e:
            augsweep.report("experiments/default.yaml", mlruns=tmp_path / "m", **kwargs)
        assert "wo%rd" not in str(e.value) and "Tk/a" not in str(e.value)


def test_file_tracking_uris_and_journal_folders_are_refused_in_one_line(tmp_path):
    from augsweep.stores.study import Stores

    with pytest.raises(ConfigError, match="file store"):
        check_tracking(f"file://{tmp_path}/x")
    stores = Stores(tmp_path / "m", "journal:/etc", "http://127.0.0.1:1", None, "s", embedded_study=False,
                    embedded_tracking=False)
    with pytest.raises(ConfigError, match="journal:PATH must name a journal file"):
        stores.check_paths()
    missing = Stores(tmp_path / "m", f"sqlite:///{tmp_path}/no/such/optuna.db", "http://127.0.0.1:1", None, "s",
                     embedded_study=False, embedded_tracking=False)
    with pytest.raises(ConfigError, match="folder that does not exist"):
        missing.check_paths()
    assert not (tmp_path / "no").exists()
