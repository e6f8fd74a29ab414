"""SQLite: writers queue at the write gate; the write-ahead log is checkpointed by a web worker's
thread, never by its requests."""

from __future__ import annotations

import fcntl
import os
import threading
import time

import pytest
from sqlalchemy import event, text

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


def test_the_pool_hands_out_its_latest_returned_connection(sqlite_app):
    """The connection whose page cache is warmest serves next, not the one idle longest."""
    first, second = db.engine.connect(), db.engine.connect()
    latest = second.connection.dbapi_connection
    first.close()
    second.close()
    with db.engine.connect() as connection:
        assert connection.connection.dbapi_connection is latest


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


def _gate_free(path: str) -> bool:
    """Whether another descriptor could take the gate's lock now."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_a_write_holds_the_gate_until_its_transaction_ends(sqlite_app, tmp_path):
    gate = str(tmp_path / "wal.db") + "-writers"
    db.session.execute(text("SELECT count(*) FROM filler"))
    assert _gate_free(gate)  # reading takes nothing
    db.session.execute(text("INSERT INTO filler (body) VALUES (x'00')"))
    assert not _gate_free(gate)
    db.session.commit()
    assert _gate_free(gate)
    db.session.execute(text("DELETE FROM filler"))
    assert not _gate_free(gate)
    db.session.rollback()
    assert _gate_free(gate)


class Interrupted(BaseException):
    """Like the trainer's stop signal: raised wherever the thread is, inside a query too."""


def test_a_write_interrupted_mid_query_ends_cleanly_and_frees_the_gate(sqlite_app, tmp_path):
    # An exit exception inside a query invalidates SQLAlchemy's connection; ending the session
    # afterwards must neither raise from the gate's rollback hook nor leave the gate taken.
    gate = str(tmp_path / "wal.db") + "-writers"

    def interrupt(cursor, statement, parameters, context):
        if "interrupted" in statement:
            raise Interrupted

    db.session.execute(text("INSERT INTO filler (body) VALUES (x'00')"))
    assert not _gate_free(gate)
    event.listen(db.engine, "do_execute", interrupt)
    try:
        with pytest.raises(Interrupted):
            db.session.execute(text("UPDATE filler SET body = x'01' /* interrupted */"))
    finally:
        event.remove(db.engine, "do_execute", interrupt)
    db.session.remove()  # raised PendingRollbackError from the gate's hook before
    assert _gate_free(gate)
    db.session.execute(text("INSERT INTO filler (body) VALUES (x'02')"))  # the next writer goes on
    db.session.commit()
    assert db.session.scalar(text("SELECT count(*) FROM filler")) == 1  # the interrupted one lost
    assert _gate_free(gate)


def test_writers_wait_at_the_gate_in_turn_and_give_up_after_its_time(tmp_path):
    gate = database.WriteGate(str(tmp_path / "gate"), wait_seconds=30)
    assert gate.acquire() and gate.acquire()  # a thread holds it once, however often it asks
    order = []

    def second() -> None:
        order.append(("second", gate.acquire()))
        gate.release()

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.2)
    assert thread.is_alive() and order == []  # waiting for the first
    gate.release()
    thread.join(0.2)
    assert thread.is_alive()  # still held once
    order.append(("first", "released"))
    gate.release()
    thread.join(5)
    assert order == [("first", "released"), ("second", True)]

    impatient = database.WriteGate(str(tmp_path / "gate"), wait_seconds=0.05)
    assert gate.acquire()
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(impatient.acquire()))
    thread.start()
    thread.join(5)
    assert outcome == [False]  # gave up: SQLite's own wait follows
    gate.release()
