"""SQLite's write-ahead log is checkpointed by a web worker's thread, never by its requests."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from fraudapp import create_app, database
from fraudapp.database import checkpoint, start_checkpointer
from fraudapp.extensions import db


@pytest.fixture
def sqlite_app(tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'wal.db'}"})
    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB)"))
        yield app
        db.engine.dispose()


def _autocheckpoint() -> int:
    with db.engine.connect() as connection:
        return connection.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()


def _write_pages(n: int) -> None:
    """Commit about n pages, one page a commit, as requests do."""
    for _ in range(n):
        with db.engine.begin() as connection:
            connection.execute(text("INSERT INTO filler (body) VALUES (zeroblob(3500))"))


def test_commands_keep_sqlites_own_checkpoints(sqlite_app):
    assert _autocheckpoint() == 1000


def test_a_web_workers_requests_never_checkpoint(sqlite_app):
    stop = threading.Event()
    thread = start_checkpointer(sqlite_app, stop)
    try:
        assert thread is not None and _autocheckpoint() == 0
        stop.set()  # no background checkpoint either while we count the frames
        thread.join()
        _write_pages(1300)  # past the 1,000 pages at which a committer would checkpoint
        log, done = checkpoint(sqlite_app)
        # every frame is still in the log: no commit checkpointed (one would have restarted it)
        assert log >= 1300 and done == log
    finally:
        stop.set()


def test_the_thread_checkpoints(sqlite_app, monkeypatch):
    sqlite_app.config["SQLITE_CHECKPOINT_SECONDS"] = 0.02
    calls = []
    monkeypatch.setattr(database, "checkpoint", lambda app: calls.append(checkpoint(app)))
    stop = threading.Event()
    start_checkpointer(sqlite_app, stop)
    try:
        _write_pages(10)
        for _ in range(500):  # the thread runs every 0.02 s; up to 10 s on a busy machine
            if len(calls) >= 2:
                break
            time.sleep(0.02)
    finally:
        stop.set()
    assert len(calls) >= 2 and calls[-1][0] == calls[-1][1]  # everything copied


def test_not_sqlite_or_switched_off_no_thread(sqlite_app):
    sqlite_app.config["SQLITE_CHECKPOINT_SECONDS"] = 0
    assert start_checkpointer(sqlite_app) is None and _autocheckpoint() == 1000
