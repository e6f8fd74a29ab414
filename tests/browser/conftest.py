"""End-to-end browser fixtures: a real gunicorn on a fresh demo instance, and chromium.

The server is set up exactly as `make run` does it (`flask db upgrade`, `flask init-demo`, gunicorn
with gunicorn.conf.py), on a temporary instance folder and small demo sizes, with three workers so
concurrent requests really meet in different processes. Besides the demo admin (whose password
init-demo prints once), the fixture creates an analyst and an API token with the same commands an
operator would use, and hands out all three credentials. Its database is
FRAUDAPP_DATABASE_URL when set (PostgreSQL runs: every table is dropped first so the migrations run
clean, and again at the end), else a temporary SQLite file of its own.

Browser tests are moved to the end of the run: the server is session-scoped and, on PostgreSQL,
shares the suite's database, so no other test may run while it is up.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv running the tests: .venv/bin under `make test`
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEMO_SIZES = {
    "FRAUDAPP_DEMO_CUSTOMERS": "300",
    "FRAUDAPP_DEMO_TERMINALS": "600",
    "FRAUDAPP_DEMO_DAYS": "40",
}
STEP_TIMEOUT = 300  # seconds for each of `db upgrade` and `init-demo`
START_TIMEOUT = 60  # seconds for gunicorn to answer /healthz with 200
WORKERS = 3
ANALYST = "analyst"
TOKEN_NAME = "browser-tests"
DEMO_ADMIN_LINE = re.compile(r"created the demo admin — user: (\S+)\s+password: (\S+)")


def pytest_collection_modifyitems(config, items):
    """Run the browser tests last (stable order otherwise)."""
    browser = [item for item in items if item.get_closest_marker("browser")]
    if browser:
        items[:] = [item for item in items if not item.get_closest_marker("browser")] + browser


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _drop_all_tables(url: str) -> None:
    """Drop every table (alembic_version included) of the suite's database."""
    engine = create_engine(engine_url(url))
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":  # fail, don't hang, on a held lock
                connection.execute(text("SET LOCAL lock_timeout = '30s'"))
            metadata = MetaData()
            metadata.reflect(connection)
            metadata.drop_all(connection)
    finally:
        engine.dispose()


def engine_url(url: str):
    """A SQLAlchemy URL for the server's database (psycopg 3 for plain postgresql:// URLs)."""
    url = make_url(url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def _run_step(args: list[str], env: dict, log: Path) -> str:
    """Run one setup command like `make run` does; its output, or fail with it if it fails."""
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


def _healthz(url: str) -> tuple[int, dict | None]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (gunicorn stops its workers, then itself); SIGKILL to its group if it lingers."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> dict:
    """A real gunicorn serving a fresh demo instance.

    {"url", "model_version", "log", "instance", "database_url", "env",
     "admin", "admin_password", "analyst", "analyst_password", "token_name", "token"}
    """
    tmp = tmp_path_factory.mktemp("live")
    instance = tmp / "instance"
    log = tmp / "server.log"
    suite_url = os.environ.get("FRAUDAPP_DATABASE_URL")  # PostgreSQL runs
    database_url = suite_url or f"sqlite:///{tmp / 'fraudapp.db'}"
    if suite_url:
        _drop_all_tables(suite_url)

    env = {key: value for key, value in os.environ.items() if not key.startswith("FRAUDAPP_")}
    env |= {
        "FRAUDAPP_INSTANCE_PATH": str(instance),
        "FRAUDAPP_DATABASE_URL": database_url,
        "PYTHONUNBUFFERED": "1",
        **DEMO_SIZES,
    }
    flask = [str(BIN / "flask"), "--app", "fraudapp"]
    _run_step([*flask, "db", "upgrade"], env, log)
    demo = _run_step([*flask, "init-demo"], env, log)
    admin = DEMO_ADMIN_LINE.search(demo)
    if admin is None:
        pytest.fail(f"`flask init-demo` did not print the demo admin's password:\n{demo}")
    analyst_password = secrets.token_urlsafe(12)
    _run_step(
        [*flask, "create-user", ANALYST, "--role", "analyst", "--password", analyst_password],
        env,
        log,
    )
    token = _run_step([*flask, "create-api-token", TOKEN_NAME], env, log).split()[-1]
    credentials = {
        "admin": admin.group(1),
        "admin_password": admin.group(2),
        "analyst": ANALYST,
        "analyst_password": analyst_password,
        "token_name": TOKEN_NAME,
        "token": token,
    }

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    gunicorn = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py"]
    gunicorn += ["--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}"]
    gunicorn += ["--access-logfile", "-", "wsgi:app"]
    with log.open("a") as out:
        out.write(f"$ {' '.join(gunicorn)}\n")
        out.flush()
        process = subprocess.Popen(
            gunicorn,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so the workers can be reaped too
        )
    try:
        health = _wait_until_healthy(process, url, log)
        yield {
            "url": url,
            "model_version": health["model_version"],
            "log": log,
            "instance": instance,
            "database_url": database_url,
            "env": env,
            **credentials,
        }
    finally:
        _stop(process)
        if suite_url:
            _drop_all_tables(suite_url)


def _wait_until_healthy(process: subprocess.Popen, url: str, log: Path) -> dict:
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}; its log:\n{log.read_text()}")
        try:
            status, body = _healthz(url)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            last = repr(exc)
        else:
            if status == 200:
                return body
            last = f"HTTP {status}"
        time.sleep(0.2)
    _stop(process)
    pytest.fail(
        f"gunicorn did not answer GET /healthz with 200 within {START_TIMEOUT} s "
        f"(last: {last}); its log:\n{log.read_text()}"
    )


@pytest.fixture
def live_db(live_server):
    """An SQLAlchemy engine on the live server's database, to check what the server stored."""
    engine = create_engine(engine_url(live_server["database_url"]))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium through Playwright (its own browser download is not used)."""
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} not found (apt-get install chromium)"
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(f"{message}; CI installs it, so this is an error")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, live_server):
    """Make pages in fresh browser contexts (own cookies: another person), closed at the end."""
    contexts = []

    def make():
        context = browser.new_context(
            base_url=live_server["url"], viewport={"width": 1200, "height": 900}
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    """A fresh browser context (own cookies) with the server as base URL."""
    return new_page()


@pytest.fixture
def login(live_server):
    """Log a page in through /login as "admin" or "analyst" (the fixture's accounts)."""

    def log_in(page, role: str) -> None:
        page.goto("/login")
        page.fill("#username", live_server[role])
        page.fill("#password", live_server[f"{role}_password"])
        with page.expect_navigation():
            page.click("#submit")
        assert "/login" not in page.url, page.inner_text("main")

    return log_in
