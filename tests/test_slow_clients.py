"""The shipped server (gunicorn with gunicorn.conf.py) against slow clients: ten connections that
send their headers a byte a second do not keep /healthz from answering, and a chunked body over
the limit is refused with 413 through the real server."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time

import pytest

from tests.processes import free_port, start_gunicorn, stop, wait_until_healthy

SLOW_CLIENTS = 10
WORKERS = 2  # as `make run`


@pytest.fixture
def server(app, database_url, tmp_path):
    """gunicorn on the test database and model registry, its threads as gunicorn.conf.py says."""
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDAPP_")} | {
        "FRAUDAPP_DATABASE_URL": database_url,
        "FRAUDAPP_MODEL_DIR": app.config["MODEL_DIR"],
        "FRAUDAPP_INSTANCE_PATH": str(tmp_path / "instance"),
        "FRAUDAPP_SECRET_KEY": "slow-clients-test-" + "k" * 20,
        "FRAUDAPP_NODE_SYNC_SECONDS": "0",
        "FRAUDAPP_MAX_CONTENT_LENGTH": str(64 * 1024),
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    process = start_gunicorn(env, port, WORKERS, log)
    try:
        wait_until_healthy(process, f"http://127.0.0.1:{port}", log)
        yield port
    finally:
        stop(process)


def _trickle(sockets: list[socket.socket], stop_event: threading.Event) -> None:
    """Send each connection's request line and headers one byte a second, never finishing."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"x" * 4000
    for byte in request:
        for sock in sockets:
            try:
                sock.send(bytes([byte]))
            except OSError:
                pass
        if stop_event.wait(1.0):
            return


def _healthz_within(port: int, seconds: float) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.slow
def test_healthz_answers_within_a_second_while_ten_clients_send_headers_slowly(server):
    slow = [socket.create_connection(("127.0.0.1", server)) for _ in range(SLOW_CLIENTS)]
    stop_event = threading.Event()
    trickler = threading.Thread(target=_trickle, args=(slow, stop_event), daemon=True)
    trickler.start()
    try:
        time.sleep(3)  # every slow connection is accepted and in the middle of its headers
        for _ in range(6):
            started = time.monotonic()
            try:
                status, body = _healthz_within(server, 1.0)
            except TimeoutError:
                pytest.fail(f"/healthz did not answer within 1 s with {SLOW_CLIENTS} slow clients")
            assert status == 200 and body["status"] == "ok", body
            assert time.monotonic() - started < 1.0
            time.sleep(0.5)
    finally:
        stop_event.set()
        trickler.join(timeout=5)
        for sock in slow:
            sock.close()


@pytest.mark.slow
def test_a_chunked_body_over_the_limit_gets_413_through_gunicorn(server):
    def body():
        yield b'{"padding": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    try:
        connection.request(
            "POST",
            "/api/v1/predictions",
            body=body(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer wrong"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"] == "Request Entity Too Large"
    finally:
        connection.close()
