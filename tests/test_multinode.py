"""Trainer and two prediction nodes on loopback, as separate machines would run them.

PostgreSQL (a database of its own), a trainer (`flask trainer` plus a gunicorn serving artifacts,
ROLE trainer), and two prediction nodes (gunicorn, ROLE web, two workers each, their own empty
model dirs and ports). Nodes learn of versions only by signed webhooks, their start-up sync and
their periodic check — no shared filesystem. The test retrains and promotes (both nodes serve the
new version within seconds), stops a node, promotes again, restarts it (it catches up), and sends
forged, stale, replayed and tampered webhooks (nothing changes).

The server is FRAUDAPP_DATABASE_URL when it is PostgreSQL, else postgresql://postgres@127.0.0.1/
test; skipped with the reason when no PostgreSQL answers (outside CI).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
import urllib.error
import urllib.request
import uuid

import pytest
from sqlalchemy import create_engine, text

from fraudapp.signing import HEADER, sign
from tests.processes import (
    FLASK,
    engine_url,
    free_port,
    healthz,
    run_step,
    start,
    start_gunicorn,
    stop,
    wait_until_healthy,
)

pytestmark = pytest.mark.slow

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
NODE_WORKERS = 2
CONVERGE_TIMEOUT = 30  # seconds for every worker of a node to serve a version
RUN_TIMEOUT = 300  # seconds for the trainer to finish a run


@pytest.fixture
def postgres_database():
    """A fresh PostgreSQL database for this test, dropped at the end; its URL."""
    server = os.environ.get("FRAUDAPP_DATABASE_URL", "")
    server = server if server.startswith("postgresql") else DEFAULT_SERVER
    admin = create_engine(engine_url(server), isolation_level="AUTOCOMMIT")
    name = f"fraudapp_multinode_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 — any failure to reach the server
        admin.dispose()
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(f"PostgreSQL at {server} is needed for the multi-node test: {exc}")
        pytest.skip(f"no PostgreSQL at {server} for the multi-node test ({exc})")
    url = engine_url(server).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _serving(url: str, samples: int = 3 * NODE_WORKERS) -> set[str | None]:
    """The versions a node's workers answer /healthz with, over several requests."""
    found = set()
    for _ in range(samples):
        try:
            status, body = healthz(url)
        except OSError:
            found.add("down")
            continue
        found.add(body["model_version"] if status == 200 else None)
    return found


def _wait_serving(urls: list[str], version: str, timeout: float = CONVERGE_TIMEOUT) -> float:
    """Seconds until every worker of every node serves `version` (fails after the timeout)."""
    started = time.monotonic()
    seen = {}
    while time.monotonic() - started < timeout:
        seen = {url: _serving(url) for url in urls}
        if all(found == {version} for found in seen.values()):
            return time.monotonic() - started
        time.sleep(0.1)
    pytest.fail(f"nodes did not all serve {version} within {timeout} s: {seen}")


def _post_hook(url: str, body: bytes, header: str | None) -> int:
    headers = {"Content-Type": "application/json"} | ({HEADER: header} if header else {})
    request = urllib.request.Request(url + "/hooks/model-published", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_trainer_and_two_nodes_on_loopback(postgres_database, tmp_path, capsys):
    secret = secrets.token_hex(24)
    ports = {name: free_port() for name in ("trainer", "a", "b")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDAPP_")}
    base |= {
        "FRAUDAPP_DATABASE_URL": postgres_database,
        "FRAUDAPP_WEBHOOK_SECRET": secret,
        "FRAUDAPP_SECRET_KEY": secrets.token_hex(24),
        "FRAUDAPP_TRAINING_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    trainer_env = base | {
        "FRAUDAPP_ROLE": "trainer",
        "FRAUDAPP_INSTANCE_PATH": str(tmp_path / "trainer"),
        "FRAUDAPP_NODE_NAME": "trainer",
        "FRAUDAPP_ARTIFACT_BASE_URL": urls["trainer"],
        "FRAUDAPP_NODES": json.dumps([urls["a"], urls["b"]]),
        "FRAUDAPP_DEMO_CUSTOMERS": "300",
        "FRAUDAPP_DEMO_TERMINALS": "600",
        "FRAUDAPP_DEMO_DAYS": "40",
        "FRAUDAPP_RETRAIN_TRAIN_DAYS": "7",
        "FRAUDAPP_PROMOTE_MIN_LABELS": "1000000000",  # promotions by hand only, and timed
        "FRAUDAPP_TRAINER_NICE": "0",
        "FRAUDAPP_TRAINER_POLL_SECONDS": "0.5",
        "FRAUDAPP_WEBHOOK_BACKOFF_SECONDS": "1",
        "FRAUDAPP_NODE_SYNC_SECONDS": "2",
    }

    def node_env(name: str) -> dict:
        return base | {
            "FRAUDAPP_ROLE": "web",
            "FRAUDAPP_INSTANCE_PATH": str(tmp_path / f"node-{name}"),
            "FRAUDAPP_NODE_NAME": f"node-{name}",
            "FRAUDAPP_NODE_URL": urls[name],
            "FRAUDAPP_NODE_SYNC_SECONDS": "60",  # so only webhooks and start-up sync are timed
        }

    log = tmp_path / "multinode.log"
    run_step([*FLASK, "db", "upgrade"], trainer_env, log)
    run_step([*FLASK, "init-demo"], trainer_env, log)
    processes = {}
    try:
        processes["artifacts"] = start_gunicorn(trainer_env, ports["trainer"], 1, log)
        processes["trainer"] = start([*FLASK, "trainer"], trainer_env, log)
        wait_until_healthy(processes["artifacts"], urls["trainer"], log)
        for name in ("a", "b"):
            processes[name] = start_gunicorn(node_env(name), ports[name], NODE_WORKERS, log)
        for name in ("a", "b"):
            wait_until_healthy(processes[name], urls[name], log)
        nodes = [urls["a"], urls["b"]]
        _wait_serving(nodes, "v1")  # installed from the trainer on start
        for name in ("a", "b"):
            assert os.listdir(tmp_path / f"node-{name}" / "models") != []

        engine = create_engine(engine_url(postgres_database))

        def scalar(sql: str, **params):
            with engine.connect() as connection:
                return connection.execute(text(sql), params).scalar()

        # retrain on the trainer, then promote: both nodes serve the new version within seconds
        run_step([*FLASK, "retrain"], trainer_env, log)
        deadline = time.monotonic() + RUN_TIMEOUT
        while scalar("SELECT status FROM training_runs ORDER BY id DESC LIMIT 1") != "succeeded":
            status = scalar("SELECT status FROM training_runs ORDER BY id DESC LIMIT 1")
            assert status in ("queued", "running"), log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the training run did not finish in time"
            time.sleep(0.5)
        assert scalar("SELECT version FROM training_runs ORDER BY id DESC LIMIT 1") == "v2"
        run_step([*FLASK, "models", "promote", "v2"], trainer_env, log)
        promoted_at = scalar("SELECT created_at FROM model_releases ORDER BY id DESC LIMIT 1")
        _wait_serving(nodes, "v2")
        seconds = (dt.datetime.now(dt.UTC) - promoted_at).total_seconds()
        with capsys.disabled():  # the figure shows in every run's output
            print(f"\nmulti-node: promotion to both nodes serving v2: {seconds:.2f} s")
        assert seconds < 10

        # a node that is down misses the webhook; restarted, it catches up on start
        stop(processes.pop("b"))
        run_step([*FLASK, "models", "rollback"], trainer_env, log)
        _wait_serving([urls["a"]], "v1")
        assert _serving(urls["b"]) == {"down"}
        missed = "SELECT status FROM webhook_deliveries WHERE url = :url ORDER BY id DESC LIMIT 1"
        assert scalar(missed, url=urls["b"] + "/hooks/model-published") == "pending"
        processes["b"] = start_gunicorn(node_env("b"), ports["b"], NODE_WORKERS, log)
        wait_until_healthy(processes["b"], urls["b"], log)
        _wait_serving([urls["b"]], "v1")

        # forged, stale, replayed and tampered deliveries change nothing
        with engine.connect() as connection:
            sha, artifact = connection.execute(
                text("SELECT sha256, artifact_url FROM model_versions WHERE version = 'v2'")
            ).one()
        body = json.dumps(
            {
                "event": "model.published",
                "version": "v2",
                "sha256": sha,
                "artifact_url": artifact,
                "published_at": "2026-01-01T00:00:00+00:00",
            }
        ).encode()
        assert _post_hook(urls["a"], body, sign("forged-" + secret, body)) == 401
        assert _post_hook(urls["a"], body, None) == 401
        assert _post_hook(urls["a"], body, sign(secret, body, int(time.time()) - 600)) == 401
        tampered = body.replace(sha.encode(), b"0" * 64)
        assert _post_hook(urls["a"], tampered, sign(secret, tampered)) == 400
        genuine = sign(secret, body)
        assert _post_hook(urls["a"], body, genuine) == 200  # v2 is not the current version ...
        assert _post_hook(urls["a"], body, genuine) == 400  # ... and a replay is refused
        assert _serving(urls["a"]) == {"v1"}
        assert "bad or stale signature" in log.read_text()

        # every node reports its version; the delivery missed by b was retried
        deadline = time.monotonic() + 30
        while scalar(missed, url=urls["b"] + "/hooks/model-published") != "delivered":
            assert time.monotonic() < deadline, "the missed delivery was not retried"
            time.sleep(0.5)
        with engine.connect() as connection:
            reported = dict(connection.execute(text("SELECT name, version FROM node_status")).all())
        assert reported == {"trainer": "v1", "node-a": "v1", "node-b": "v1"}
        engine.dispose()
    finally:
        for process in processes.values():
            stop(process)
