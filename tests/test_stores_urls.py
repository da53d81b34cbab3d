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
    # issue 22 (4): every form SQLAlchemy accepts: '/' and '@' in a password, percent-encoding, a query password.
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
    """issue 22 (4): `optuna_storage` (an MLflow tag) and every printed option come from `storage_label`."""
    from augsweep.stores.study import Stores

    url = "postgresql+psycopg://augsweep:se/cr@et@127.0.0.1:5432/augsweep"
    stores = Stores(tmp_path, url, "http://u:an/other@127.0.0.1:5001", None, "s", embedded_study=False,
                    embedded_tracking=False)
    shown = stores.storage_label + stores.tracking_label + stores.options()
    assert "se/cr" not in shown and "cr@et" not in shown and "an/other" not in shown
    assert stores.storage_label == "postgresql+psycopg://augsweep:***@127.0.0.1:5432/augsweep"
