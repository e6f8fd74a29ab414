"""SQLite connection settings, writers queued at a lock, and the write-ahead log checkpointed off
the request path.

SQLite has one writer at a time, and a writer that finds the database locked sleeps in its busy
handler — 1, 2, 5, … 50, 100 ms between tries — so under concurrent writes a request can wait a
hundred milliseconds for a lock freed long before. Writers of every process therefore first take a
file lock beside the database (`WriteGate`), polled every half millisecond, so the next writer
starts within that of the last one's commit; a writer that waits longer than
SQLITE_WRITE_GATE_SECONDS (a long import or stored file holds it) goes on to SQLite's own wait.

In WAL mode SQLite appends every commit to the `-wal` file and copies it back into the database
(a checkpoint: about a thousand pages written, then fsync) whenever the file passes 1,000 pages —
in the connection that commits, so by default one request in a hundred or so waits for a
checkpoint before it can answer. A web worker (wsgi.py) instead turns that off for its connections
and checkpoints from a background thread every SQLITE_CHECKPOINT_SECONDS (PASSIVE: it waits for no
reader or writer). Commands and the trainer keep SQLite's default.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import event, text

from .extensions import db

_EXTENSION = "fraudapp.sqlite"
PRAGMAS = (
    "journal_mode=WAL",  # concurrent readers
    "synchronous=NORMAL",  # no fsync per commit in WAL mode; checkpoints sync
    "foreign_keys=ON",  # cascades
    "busy_timeout=10000",  # writers wait for each other
    "temp_store=MEMORY",
    "cache_size=-131072",
)


@dataclass
class WalSettings:
    """Whether this process's connections leave checkpoints to a background thread."""

    background: bool = False


def configure_sqlite(app: Flask) -> None:
    """Set the pragmas on every new SQLite connection of the app, and queue its writers at the
    database's write gate."""
    settings = app.extensions[_EXTENSION] = WalSettings()
    with app.app_context():
        engine = db.engine
        event.listen(engine, "connect", lambda connection, _: _pragmas(connection, settings))
        if engine.url.database and engine.url.database != ":memory:":
            gate = WriteGate(
                engine.url.database + "-writers", app.config["SQLITE_WRITE_GATE_SECONDS"]
            )
            gate.attach(engine)


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class WriteGate:
    """A lock file every writer of the database takes before its first write and keeps until its
    transaction ends (see the module's docstring). Each thread has its own descriptor, so the lock
    also orders the threads of one process; a thread holds it once however many connections it
    writes on."""

    def __init__(self, path: str, wait_seconds: float):
        self.path = path
        self.wait_seconds = wait_seconds
        self._local = threading.local()

    def attach(self, engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before_execute)
        event.listen(engine, "commit", lambda connection: self._end(connection, "commit"))
        event.listen(engine, "rollback", lambda connection: self._end(connection, "rollback"))
        event.listen(engine.pool, "checkin", lambda _dbapi, record: self._release(record.info))
        # a connection discarded mid-transaction (an exit exception inside a query) is closed,
        # and SQLite with it ends the transaction
        event.listen(
            engine.pool, "invalidate", lambda _dbapi, record, _e: self._release(record.info)
        )

    def _before_execute(self, connection, _cursor, statement, *_args) -> None:
        info = connection.info
        if "write_gate" not in info and statement.lstrip()[:7].upper().startswith(_WRITES):
            info["write_gate"] = self.acquire()

    def _end(self, connection, how: str) -> None:
        """Before SQLAlchemy ends the transaction: end it on the driver first (SQLAlchemy's own
        call then finds none), so the next writer never meets SQLite's lock. A connection already
        discarded has released the gate (`invalidate`) and has no transaction left to end."""
        if connection.invalidated:
            return
        if connection.info.get("write_gate"):
            getattr(connection.connection.dbapi_connection, how)()
        self._release(connection.info)

    def _release(self, info: dict) -> None:
        if info.pop("write_gate", False):
            self.release()

    def acquire(self) -> bool:
        """Take the gate (True), or give up after `wait_seconds` (False: SQLite's wait follows)."""
        local = self._local
        if getattr(local, "depth", 0):
            local.depth += 1
            return True
        if getattr(local, "fd", None) is None:
            local.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                fcntl.flock(local.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.0005)
            else:
                local.depth = 1
                return True

    def release(self) -> None:
        local = self._local
        local.depth -= 1
        if local.depth == 0:
            fcntl.flock(local.fd, fcntl.LOCK_UN)


def _pragmas(connection, settings: WalSettings) -> None:
    cursor = connection.cursor()
    for pragma in PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    if settings.background:
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def checkpoint(app: Flask) -> tuple[int, int]:
    """One PASSIVE checkpoint: (frames in the log, frames now in the database)."""
    with app.app_context(), db.engine.connect() as connection:
        _busy, log, done = connection.execute(text("PRAGMA wal_checkpoint(PASSIVE)")).one()
    return log, done


def start_checkpointer(app: Flask, stop: threading.Event | None = None) -> threading.Thread | None:
    """On SQLite: checkpoint from a thread every SQLITE_CHECKPOINT_SECONDS instead of in the
    requests that commit (None: not SQLite, or switched off with 0)."""
    settings = app.extensions.get(_EXTENSION)
    interval = float(app.config["SQLITE_CHECKPOINT_SECONDS"])
    if settings is None or interval <= 0:
        return None
    settings.background = True
    with app.app_context():
        db.engine.dispose()  # connections opened so far would still checkpoint on commit
    thread = threading.Thread(
        target=_checkpoint_every,
        args=(app, interval, stop or threading.Event()),
        daemon=True,
        name="fraudapp-checkpoint",
    )
    thread.start()
    return thread


def _checkpoint_every(app: Flask, interval: float, stop: threading.Event) -> None:
    failed = False
    while not stop.wait(interval):
        try:
            checkpoint(app)
        except Exception as exc:  # the thread must survive anything; logged once per stretch
            if not failed:
                app.logger.error("WAL checkpoint failed (will retry): %s", exc)
            failed = True
        else:
            failed = False
