"""Helpers for tests that run the real thing in subprocesses: `flask` commands and gunicorn."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv running the tests: .venv/bin under `make test`
FLASK = [str(BIN / "flask"), "--app", "fraudapp"]
STEP_TIMEOUT = 300  # seconds for one setup command
START_TIMEOUT = 60  # seconds for gunicorn to answer /healthz with 200


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def engine_url(url: str):
    """A SQLAlchemy URL for a server's database (psycopg 3 for plain postgresql:// URLs)."""
    url = make_url(url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def run_step(args: list[str], env: dict, log: Path) -> str:
    """Run one command as an operator would; its output, or fail the test with it."""
    try:
        done = subprocess.run(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"`{' '.join(args)}` took longer than {STEP_TIMEOUT} s:\n{exc.stdout}\n{exc.stderr}"
        )
    with log.open("a") as out:
        out.write(f"$ {' '.join(args)}\n{done.stdout}{done.stderr}\n")
    if done.returncode:
        pytest.fail(
            f"`{' '.join(args)}` exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """Start a long-running command in its own process group, its output appended to `log`."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so the workers can be reaped too
        )


def start_gunicorn(env: dict, port: int, workers: int, log: Path) -> subprocess.Popen:
    """gunicorn with the project's gunicorn.conf.py on a loopback port."""
    args = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py"]
    args += ["--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
    return start([*args, "--access-logfile", "-", "wsgi:app"], env, log)


def healthz(url: str) -> tuple[int, dict | None]:
    """GET /healthz: (status, body)."""
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (gunicorn stops its workers, then itself); SIGKILL to its group if it lingers."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_until_healthy(process: subprocess.Popen, url: str, log: Path) -> dict:
    """Wait for /healthz to answer 200; its body. Fails with the log if gunicorn exits or hangs."""
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}; its log:\n{log.read_text()}")
        try:
            status, body = healthz(url)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            last = repr(exc)
        else:
            if status == 200:
                return body
            last = f"HTTP {status}"
        time.sleep(0.2)
    stop(process)
    pytest.fail(
        f"gunicorn did not answer GET /healthz with 200 within {START_TIMEOUT} s "
        f"(last: {last}); its log:\n{log.read_text()}"
    )
