"""A real `flask trainer` stopped mid-run: SIGTERM fails its run at once and it exits cleanly;
SIGKILL (no handler runs) leaves a run that the runs page fails once its heartbeats are overdue.

The trainer runs in a subprocess on the suite's database (SQLite file or PostgreSQL) and the test's
model directory, training on the simulated history with the default 28-day window on one thread,
so a run lasts long enough to be stopped in the middle.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from sqlalchemy import create_engine, select, text

from fraudapp.extensions import db
from fraudapp.i18n import shown
from fraudapp.models import TrainingRun
from fraudapp.services.training import runs
from tests.conftest import login
from tests.processes import FLASK, engine_url, start, stop

pytestmark = pytest.mark.slow

START_TIMEOUT = 120  # seconds for the trainer to start and claim the run


@pytest.fixture
def trainer_env(app, stored_history, tmp_path, database_url) -> dict:
    """The environment of a trainer on the test's database and model directory."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDAPP_")}
    return base | {
        "FRAUDAPP_DATABASE_URL": database_url,
        "FRAUDAPP_MODEL_DIR": app.config["MODEL_DIR"],
        "FRAUDAPP_INSTANCE_PATH": str(tmp_path / "trainer"),
        "FRAUDAPP_ROLE": "trainer",
        "FRAUDAPP_TRAINING_THREADS": "1",
        "FRAUDAPP_TRAINER_NICE": "0",
        "FRAUDAPP_TRAINER_POLL_SECONDS": "0.2",
        "FRAUDAPP_PROMOTE_MIN_LABELS": "1000000000",  # never promote: the registry stays as is
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def read(database_url):
    """A run's (status, error), read on a connection of its own; the error as English text (it is
    stored translatable, see `fraudapp.i18n.Message`)."""
    engine = create_engine(engine_url(database_url))

    def status(run_id: int) -> tuple[str, str | None]:
        with engine.connect() as connection:
            query = text("SELECT status, error FROM training_runs WHERE id = :id")
            status, error = connection.execute(query, {"id": run_id}).one()
            return status, shown(error) or None

    yield status
    engine.dispose()


def _start_and_wait_running(env: dict, log, read) -> tuple:
    run = runs.request_run("cli", "cli")
    process = start([*FLASK, "trainer"], env, log)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while (status := read(run.id)[0]) != "running":  # one read: it may change meanwhile
            assert status == "queued", log.read_text()
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the trainer did not claim the run"
            time.sleep(0.05)
    except BaseException:
        stop(process)  # a trainer left behind would claim the runs of the tests after this one
        raise
    return run, process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_fails_the_run_at_once_and_the_trainer_exits(
    signum, trainer_env, read, tmp_path, capsys
):
    name = signal.Signals(signum).name
    log = tmp_path / "trainer.log"
    run, process = _start_and_wait_running(trainer_env, log, read)
    try:
        time.sleep(0.5)  # into the run: loading the history or training
        assert read(run.id)[0] == "running"
        process.send_signal(signum)
        sent = time.monotonic()
        assert process.wait(timeout=30) == 0, log.read_text()
        seconds = time.monotonic() - sent
    finally:
        stop(process)
    assert read(run.id) == ("failed", f"the trainer was stopped ({name})")
    output = log.read_text()
    assert f"run {run.id}: started (cli, asked by cli)" in output
    assert f"trainer: stopped by {name}; run {run.id} marked failed" in output
    # (SQLAlchemy may log the query it was interrupted in; the process still ends cleanly)
    assert output.endswith(f"run {run.id} marked failed\ntrainer: 0 run(s) done\n"), output
    with capsys.disabled():
        print(f"\ntrainer: {name} to exit with its run failed: {seconds:.2f} s")
    assert seconds < 10


def test_a_killed_trainer_run_is_failed_by_the_runs_page_within_the_limit(
    app, trainer_env, read, client, users, tmp_path, capsys
):
    limit = app.config["TRAINER_STALE_SECONDS"]  # the default, as the trainer has it too
    log = tmp_path / "trainer.log"
    run, process = _start_and_wait_running(trainer_env, log, read)
    try:
        process.send_signal(signal.SIGKILL)  # no handler runs: only the heartbeats stop
        killed = time.monotonic()
        process.wait(timeout=30)
    finally:
        stop(process)
    login(client, "admin")
    while read(run.id)[0] == "running":
        assert client.get("/admin/runs").status_code == 200
        assert time.monotonic() - killed < limit + 15, "the dead trainer's run is still running"
        time.sleep(0.25)
    seconds = time.monotonic() - killed
    status, error = read(run.id)
    assert status == "failed" and error.startswith("the trainer stopped sending heartbeats at ")
    with capsys.disabled():
        print(f"\ntrainer: SIGKILL to its run shown failed: {seconds:.1f} s (limit {limit:g} s)")
    assert seconds <= limit + 2

    # "Retrain now" queues a new run rather than showing the dead one
    response = client.post("/admin/runs")
    new = db.session.scalar(select(TrainingRun).where(TrainingRun.id != run.id))
    assert new is not None and new.status == "queued"
    assert response.location.endswith(f"/admin/runs/{new.id}")
