"""Daily prediction counts: added up in each process, written by a background thread and at exit,
never lost on a clean shutdown."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import func, select

from fraudapp.extensions import db
from fraudapp.models import DailyCount
from fraudapp.services.transactions import counts
from tests.conftest import after_history
from tests.processes import free_port, start_gunicorn, stop, wait_until_healthy


def _counted() -> dict[tuple[bool, bool], int]:
    db.session.rollback()  # a fresh snapshot: the counts are written on another connection
    rows = db.session.execute(
        select(DailyCount.is_fraud, DailyCount.consented, func.sum(DailyCount.count)).group_by(
            DailyCount.is_fraud, DailyCount.consented
        )
    )
    return {(fraud, consented): int(n) for fraud, consented, n in rows}


def _body(consent: bool, customer: int = 12) -> dict:
    return {
        "tx_datetime": after_history(),
        "customer_id": customer,
        "terminal_id": 40,
        "amount": 42.5,
        "consent": consent,
    }


def test_predictions_are_counted_without_a_write_per_request(app, client, auth, stored_history):
    app.config["COUNT_FLUSH_SECONDS"] = 3600.0  # only explicit flushes in this test
    counts.flush()
    for consent in (False, False, True):
        assert client.post("/api/v1/predictions", json=_body(consent), headers=auth).status_code
    batch = {"transactions": [_body(False, customer) for customer in range(5)]}
    assert client.post("/api/v1/predictions", json=batch, headers=auth).status_code == 201
    assert _counted() == {}  # nothing written by the requests themselves
    assert counts.flush() == 8
    assert sum(_counted().values()) == 8
    assert sum(n for (_, consented), n in _counted().items() if consented) == 1
    client.post("/api/v1/predictions", json=_body(False), headers=auth)
    assert counts.flush() == 1 and sum(_counted().values()) == 9  # added to the stored ones


def test_a_failed_write_keeps_the_counts_for_the_next(
    app, client, auth, stored_history, monkeypatch
):
    app.config["COUNT_FLUSH_SECONDS"] = 3600.0
    client.post("/api/v1/predictions", json=_body(False), headers=auth)

    def refuse(pending):
        raise RuntimeError("database refused")

    with monkeypatch.context() as patch:
        patch.setattr(counts, "_write", refuse)
        with pytest.raises(RuntimeError):
            counts.flush()
    assert counts.flush() == 1 and sum(_counted().values()) == 1


def test_the_writer_thread_writes_within_its_interval(app, client, auth, stored_history):
    app.config["COUNT_FLUSH_SECONDS"] = 0.05
    client.post("/api/v1/predictions", json=_body(False), headers=auth)
    pending = app.extensions["fraudapp.counts"]
    for _ in range(200):  # the thread writes every 0.05 s; up to 10 s on a busy machine
        if pending.pending() == 0 and sum(_counted().values()) == 1:
            break
        time.sleep(0.05)
    assert sum(_counted().values()) == 1


def test_a_process_that_exits_cleanly_writes_its_counts(app, stored_history, tmp_path):
    """No flush called: the exit of the process writes what it counted."""
    script = textwrap.dedent(
        f"""
        from fraudapp import create_app
        from fraudapp.services import tokens
        app = create_app({{"TESTING": True, "DATABASE_URL": {app.config["DATABASE_URL"]!r},
                          "MODEL_DIR": {app.config["MODEL_DIR"]!r},
                          "COUNT_FLUSH_SECONDS": 3600.0}})
        with app.app_context():
            auth = {{"Authorization": "Bearer " + tokens.create_token("exit")}}
        client = app.test_client()
        for consent in (False, True, False):
            body = {_body(False)!r} | {{"consent": consent}}
            assert client.post("/api/v1/predictions", json=body, headers=auth).status_code == 201
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sum(_counted().values()) == 3
    assert sum(n for (_, consented), n in _counted().items() if consented) == 1


@pytest.mark.slow
def test_gunicorn_stopped_with_sigterm_writes_every_count(app, database_url, token, tmp_path):
    """The shipped server: counts written once an hour at most, so only the workers' clean exit
    after SIGTERM can write them."""
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDAPP_")} | {
        "FRAUDAPP_DATABASE_URL": database_url,
        "FRAUDAPP_MODEL_DIR": app.config["MODEL_DIR"],
        "FRAUDAPP_INSTANCE_PATH": str(tmp_path / "instance"),
        "FRAUDAPP_SECRET_KEY": "counts-test-" + "k" * 20,
        "FRAUDAPP_NODE_SYNC_SECONDS": "0",
        "FRAUDAPP_COUNT_FLUSH_SECONDS": "3600",
    }
    port = free_port()
    process = start_gunicorn(env, port, 2, log)
    try:
        wait_until_healthy(process, f"http://127.0.0.1:{port}", log)
        for index in range(12):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request(
                "POST",
                "/api/v1/predictions",
                json.dumps(_body(consent=index % 3 == 0, customer=index)),
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            assert connection.getresponse().status == 201
            connection.close()
        assert _counted() == {}
    finally:
        stop(process)  # SIGTERM: gunicorn stops its workers, which exit cleanly
    assert process.returncode == 0
    assert sum(_counted().values()) == 12
    assert sum(n for (_, consented), n in _counted().items() if consented) == 4
