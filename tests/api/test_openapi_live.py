"""Schemathesis against the live app: gunicorn on a fresh demo instance (a trained model, an API
token from `flask create-api-token`), every operation of /api/v1/openapi.json with every check
(no 5xx, statuses, content types, headers and bodies as documented, bad input refused, good input
accepted, methods, auth), deterministic and bounded in examples. schemathesis.toml at the
repository's root holds its settings.

The database is a fresh one on the server FRAUDAPP_DATABASE_URL names when it is PostgreSQL
(dropped at the end), else a temporary SQLite file.
"""

from __future__ import annotations

import os
import subprocess
import uuid
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import create_engine, text

from tests.processes import (
    BIN,
    FLASK,
    ROOT,
    engine_url,
    free_port,
    run_step,
    start_gunicorn,
    stop,
    wait_until_healthy,
)

pytestmark = pytest.mark.slow

DEMO_SIZES = {
    "FRAUDAPP_DEMO_CUSTOMERS": "300",
    "FRAUDAPP_DEMO_TERMINALS": "600",
    "FRAUDAPP_DEMO_DAYS": "40",
}
MAX_EXAMPLES = 60  # per operation and phase: about a thousand requests, under a minute
RUN_TIMEOUT = 600  # seconds
OPERATIONS = {
    "POST /api/v1/predictions",
    "POST /api/v1/predictions/{prediction_id}/feedback",
    "GET /api/v1/model",
    "GET /healthz",
}  # schemathesis does not test GET /api/v1/openapi.json, the document it reads


@pytest.fixture
def database(tmp_path):
    """A fresh database for the server: on PostgreSQL its own (dropped at the end)."""
    server = os.environ.get("FRAUDAPP_DATABASE_URL", "")
    if not server.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'fraudapp.db'}"
        return
    admin = create_engine(engine_url(server), isolation_level="AUTOCOMMIT")
    name = f"fraudapp_schemathesis_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield engine_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _schemathesis(url: str, token: str, report: str, cwd) -> subprocess.CompletedProcess:
    args = [str(BIN / "schemathesis"), "--config-file", str(ROOT / "schemathesis.toml"), "run"]
    args += [f"{url}/api/v1/openapi.json", "--header", f"Authorization: Bearer {token}"]
    args += ["--checks", "all", "--max-examples", str(MAX_EXAMPLES)]
    args += ["--generation-deterministic", "--workers", "1", "--no-color"]
    args += ["--report", "junit", "--report-junit-path", report]
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )


def test_schemathesis_finds_nothing_on_any_operation(database, tmp_path, capsys):
    env = {key: value for key, value in os.environ.items() if not key.startswith("FRAUDAPP_")}
    env |= {
        "FRAUDAPP_INSTANCE_PATH": str(tmp_path / "instance"),
        "FRAUDAPP_DATABASE_URL": database,
        "FRAUDAPP_API_RATE_LIMIT": "1000000/minute",  # the run is not a flood to refuse
        "FRAUDAPP_API_ADDRESS_RATE_LIMIT": "1000000/minute",
        "PYTHONUNBUFFERED": "1",
        **DEMO_SIZES,
    }
    log = tmp_path / "server.log"
    run_step([*FLASK, "db", "upgrade"], env, log)
    run_step([*FLASK, "init-demo"], env, log)
    token = run_step([*FLASK, "create-api-token", "schemathesis"], env, log).split()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_gunicorn(env, port, 2, log)
    try:
        wait_until_healthy(process, url, log)
        report = str(tmp_path / "junit.xml")
        done = _schemathesis(url, token, report, tmp_path)
    finally:
        stop(process)
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    cases = {case.get("name") for case in ET.parse(report).getroot().iter("testcase")}
    assert OPERATIONS <= cases, cases
    assert "Traceback" not in log.read_text()
    summary = [line for line in done.stdout.splitlines() if "generated" in line]
    with capsys.disabled():  # the figure shows in every run's output
        print(f"\nschemathesis: {summary[-1].strip() if summary else done.stdout[-300:]}")
