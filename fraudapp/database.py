"""SQLite connection settings, and the write-ahead log checkpointed off the request path.

In WAL mode SQLite appends every commit to the `-wal` file and copies it back into the database
(a checkpoint: about a thousand pages written, then fsync) whenever the file passes 1,000 pages —
in the connection that commits, so by default one request in a hundred or so waits for a
checkpoint before it can answer. A web worker (wsgi.py) instead turns that off for its connections
and checkpoints from a background thread every SQLITE_CHECKPOINT_SECONDS (PASSIVE: it waits for no
reader or writer). Commands and the trainer keep SQLite's default.
"""

from __future__ import annotations

import threading
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
    """Set the pragmas on every new SQLite connection of the app."""
    settings = app.extensions[_EXTENSION] = WalSettings()
    with app.app_context():
        event.listen(db.engine, "connect", lambda connection, _: _pragmas(connection, settings))


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
