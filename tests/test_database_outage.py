"""An unreachable database: 503 (JSON with Retry-After on the API, a page for people, /healthz),
one log line per outage instead of a traceback per request, and recovery without a restart.

On PostgreSQL the database is cut and restored through a TCP proxy on loopback; on any backend a
SQLite file in a folder that does not exist yet stands for a database that cannot be opened.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.engine import make_url

from fraudapp import create_app
from fraudapp.extensions import db
from fraudapp.services import tokens
from tests.conftest import after_history
from tests.dbproxy import TcpProxy

REQUESTS = 12


def _app(url: str, model_dir):
    return create_app(
        {
            "TESTING": True,
            "DATABASE_URL": url,
            "MODEL_DIR": str(model_dir),
            "WTF_CSRF_ENABLED": False,
            "MODEL_CHECK_INTERVAL": 0.0,
            "HEALTH_DATABASE_CHECK_SECONDS": 0.0,
            "DATABASE_RETRY_AFTER_SECONDS": 7,
        }
    )


def _predict(client, auth: dict, customer: int = 1):
    body = {
        "tx_datetime": after_history(),
        "customer_id": customer,
        "terminal_id": 2,
        "amount": 42.5,
        "consent": True,
    }
    return client.post("/api/v1/predictions", json=body, headers=auth)


def _assert_refused(client, auth: dict) -> None:
    """Every kind of request answers 503 while the database is down."""
    for customer in range(REQUESTS):
        answer = _predict(client, auth, customer)
        assert answer.status_code == 503
        assert answer.json["error"] == "Service Unavailable"
        assert "database" in answer.json["message"]
        assert answer.headers["Retry-After"] == "7"
    page = client.post(
        "/login",
        data={"username": "someone", "password": "x" * 12},
        headers={"Accept": "text/html"},
    )
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert "cannot be reached" in page.text and page.headers["Retry-After"] == "7"
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json["status"] == "database unreachable"


def _messages(caplog, start: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]


@pytest.fixture
def proxied(app, database_url):
    """A second app on the suite's PostgreSQL database, reaching it through a TCP proxy (the
    suite's `app` empties the tables afterwards)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("the TCP proxy cut needs FRAUDAPP_DATABASE_URL on PostgreSQL")
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxied_app = _app(through, app.config["MODEL_DIR"])
    with proxied_app.app_context():
        yield proxied_app, proxy
        proxy.restore()
        db.session.remove()
        db.engine.dispose()
    proxy.stop()


def test_a_database_cut_answers_503_logs_once_and_heals(proxied, caplog):
    app, proxy = proxied
    caplog.set_level(logging.INFO)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {tokens.create_token('outage')}"}
    db.session.remove()
    assert _predict(client, auth).status_code == 201
    assert client.get("/healthz").status_code == 200

    proxy.cut()
    _assert_refused(client, auth)
    assert len(_messages(caplog, "database unreachable")) == 1
    assert not [r for r in caplog.records if r.exc_info]  # no traceback per request

    proxy.restore()
    assert _predict(client, auth).status_code == 201  # the pool reconnects on its own
    assert client.get("/healthz").status_code == 200
    healed = _messages(caplog, "database reachable again")
    assert len(healed) == 1 and f"{REQUESTS + 1} requests refused" in healed[0]
    assert len(_messages(caplog, "database unreachable")) == 1


def test_a_database_that_cannot_be_opened_answers_503_until_it_can(
    trained_registry, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    folder = tmp_path / "not-yet"
    app = _app(f"sqlite:///{folder / 'fraudapp.db'}", trained_registry)
    client = app.test_client()
    with app.app_context():
        _assert_refused(client, {"Authorization": "Bearer " + "t" * 40})
        assert len(_messages(caplog, "database unreachable")) == 1

        folder.mkdir()
        db.create_all()
        auth = {"Authorization": f"Bearer {tokens.create_token('outage')}"}
        db.session.remove()
        assert _predict(client, auth).status_code == 201
        assert client.get("/healthz").status_code == 200
        assert len(_messages(caplog, "database reachable again")) == 1
        db.engine.dispose()
