"""API rate limits: per address for requests without a valid token (a wrong-token flood is cut
short), per token for the rest; 429 answers JSON with Retry-After; shared through Redis when
RATELIMIT_STORAGE_URI points at it; a storage that cannot be reached does not stop the API."""

from __future__ import annotations

import secrets
import socket
import threading
import time

import pytest

from fraudapp import create_app
from fraudapp.extensions import SweptMemoryStorage, db, limiter
from fraudapp.services import tokens
from tests.conftest import settings_of

REDIS = ("127.0.0.1", 6379)


def _assert_429(response) -> None:
    assert response.status_code == 429
    body = response.get_json()
    assert body["error"] == "Too Many Requests" and body["message"]
    assert int(response.headers["Retry-After"]) > 0


def test_a_wrong_token_flood_gets_429_after_the_address_limit(app, client, auth):
    app.config["API_ADDRESS_RATE_LIMIT"] = "5/minute"
    wrong = {"Authorization": "Bearer fa_" + "x" * 43}
    statuses = [client.get("/api/v1/model", headers=wrong).status_code for _ in range(5)]
    assert statuses == [401] * 5
    _assert_429(client.get("/api/v1/model", headers=wrong))
    _assert_429(client.post("/api/v1/predictions", json={}))  # no token at all: same budget
    # a valid token from the same address is not held back by the flood
    assert client.get("/api/v1/model", headers=auth).status_code == 200


def test_a_valid_token_is_limited_per_token(app, client, auth):
    app.config["API_RATE_LIMIT"] = "3/minute"
    statuses = [client.get("/api/v1/model", headers=auth).status_code for _ in range(3)]
    assert statuses == [200] * 3
    limited = client.post("/api/v1/predictions", json={}, headers=auth)  # every route counts
    _assert_429(limited)
    assert limited.headers["X-RateLimit-Limit"] == "3"
    other = {"Authorization": f"Bearer {tokens.create_token('other client')}"}
    assert client.get("/api/v1/model", headers=other).status_code == 200


def test_pages_and_healthz_are_not_rate_limited(app, client):
    app.config["API_ADDRESS_RATE_LIMIT"] = "1/minute"
    assert [client.get("/healthz").status_code for _ in range(3)] == [200] * 3
    assert [client.get("/").status_code for _ in range(3)] == [200] * 3


def _dispose(*apps) -> None:
    """Close the database connections of apps made in a test (PostgreSQL warns otherwise)."""
    for made in apps:
        with made.app_context():
            db.session.remove()
            db.engine.dispose()


def _redis_reachable() -> bool:
    try:
        socket.create_connection(REDIS, timeout=0.5).close()
    except OSError:
        return False
    return True


def test_limits_are_shared_through_redis(app, token):
    if not _redis_reachable():
        pytest.skip(f"no Redis answers on {REDIS[0]}:{REDIS[1]}")
    import redis

    # a limit of its own, so that counts left by earlier runs cannot meet this one
    limit = f"2 per {secrets.randbelow(10**6) + 10**6} seconds"
    config = settings_of(app) | {
        "RATELIMIT_STORAGE_URI": f"redis://{REDIS[0]}:{REDIS[1]}/0",
        "API_RATE_LIMIT": limit,
    }
    auth = {"Authorization": f"Bearer {token}"}
    server = redis.Redis(*REDIS)
    pattern = f"*/token:{tokens.verify_token(token).id}/api-token/*"
    apps = []
    try:
        apps.append(create_app(config))  # one worker ...
        first = apps[0].test_client()
        assert [first.get("/api/v1/model", headers=auth).status_code for _ in range(2)] == [200] * 2
        assert server.keys(pattern)  # the counts live in Redis
        apps.append(create_app(config))  # ... and another, with a storage connection of its own
        _assert_429(apps[1].test_client().get("/api/v1/model", headers=auth))
    finally:
        _dispose(*apps)
        keys = server.keys(pattern)
        if keys:
            server.delete(*keys)
        server.close()


def test_an_unreachable_storage_does_not_stop_the_api(app, token):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = settings_of(app) | {"RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{port}/0"}
    made = create_app(config)
    client = made.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    assert [client.get("/api/v1/model", headers=auth).status_code for _ in range(3)] == [200] * 3
    _dispose(made)


def test_counting_requests_starts_no_thread(app, monkeypatch):
    """The in-memory storage (memory://, the default) sweeps from one thread of its own; limits'
    own started a new thread 10 ms after a counted request whenever the last one had ended."""
    assert isinstance(limiter.storage, SweptMemoryStorage)
    storage = SweptMemoryStorage()
    started = []
    original = threading.Thread.start
    monkeypatch.setattr(
        threading.Thread, "start", lambda thread: started.append(thread.name) or original(thread)
    )
    for _ in range(5):
        storage.incr("token:1", expiry=60)
        time.sleep(0.02)  # past the 10 ms after which limits' storage would start another
    assert started == [] and storage.get("token:1") == 5


def test_expired_counters_are_swept_by_the_storages_thread(monkeypatch):
    monkeypatch.setattr(SweptMemoryStorage, "SWEEP_SECONDS", 0.01)
    storage = SweptMemoryStorage()
    storage.incr("fresh", expiry=3600)
    storage.storage["stale"], storage.expirations["stale"] = 1, 0.0  # expired long ago
    for _ in range(500):  # the thread sweeps every 0.01 s; up to 5 s on a busy machine
        if "stale" not in storage.storage:
            break
        time.sleep(0.01)
    assert "stale" not in storage.storage and storage.get("fresh") == 1
