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

import os
import re
import secrets

import pytest
from sqlalchemy import MetaData, create_engine, text

from tests.processes import (
    FLASK,
    engine_url,
    free_port,
    run_step,
    start_gunicorn,
    stop,
    wait_until_healthy,
)

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
WORKERS = 3
ANALYST = "analyst"
TOKEN_NAME = "browser-tests"
DEMO_ADMIN_LINE = re.compile(r"created the demo admin — user: (\S+)\s+password: (\S+)")


def pytest_collection_modifyitems(config, items):
    """Run the browser tests last (stable order otherwise)."""
    browser = [item for item in items if item.get_closest_marker("browser")]
    if browser:
        items[:] = [item for item in items if not item.get_closest_marker("browser")] + browser


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
    flask = FLASK
    run_step([*flask, "db", "upgrade"], env, log)
    demo = run_step([*flask, "init-demo"], env, log)
    admin = DEMO_ADMIN_LINE.search(demo)
    if admin is None:
        pytest.fail(f"`flask init-demo` did not print the demo admin's password:\n{demo}")
    analyst_password = secrets.token_urlsafe(12)
    run_step(
        [*flask, "create-user", ANALYST, "--role", "analyst", "--password", analyst_password],
        env,
        log,
    )
    token = run_step([*flask, "create-api-token", TOKEN_NAME], env, log).split()[-1]
    credentials = {
        "admin": admin.group(1),
        "admin_password": admin.group(2),
        "analyst": ANALYST,
        "analyst_password": analyst_password,
        "token_name": TOKEN_NAME,
        "token": token,
    }

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_gunicorn(env, port, WORKERS, log)
    try:
        health = wait_until_healthy(process, url, log)
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
        stop(process)
        if suite_url:
            _drop_all_tables(suite_url)


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
    """Make pages in fresh browser contexts (own cookies: another person), closed at the end;
    options go to the context (locale="pt-BR": the browser asks for Portuguese)."""
    contexts = []

    def make(**options):
        context = browser.new_context(
            base_url=live_server["url"], viewport={"width": 1200, "height": 900}, **options
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


def accept_dialogs(page) -> list[str]:
    """Accept every confirm() the page opens from now on; the list of their messages."""
    messages: list[str] = []

    def accept(dialog) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return messages
