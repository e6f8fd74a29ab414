"""Anonymous daily prediction counts, added up in each process and written about once a second.

Every scored transaction adds one to its (day, model version, decision, consented) count. Written
by each request, that count would be an upsert of one hot row per prediction (even without
consent) and, on SQLite, one more write transaction waiting for the database's single writer
lock. Instead each process adds them up in memory, and a background thread writes the sums once
every COUNT_FLUSH_SECONDS, at the process's exit (a clean gunicorn shutdown, a CLI command), and
whenever `flush()` is called. A write that fails keeps its sums for the next one. The monitoring
figures may therefore lag by up to COUNT_FLUSH_SECONDS; a killed process (SIGKILL) loses at most
that much.
"""

from __future__ import annotations

import atexit
import datetime as dt
import threading
import weakref
from collections import Counter

from flask import Flask, current_app

from ...extensions import db
from ...models import DailyCount, dialect_insert

_EXTENSION = "fraudapp.counts"
Key = tuple[dt.date, str, bool, bool]  # day, model version, is_fraud, consented


class PendingCounts:
    """One app's counts not yet written, and the thread that writes them."""

    def __init__(self, app: Flask):
        self._app = weakref.ref(app)
        self.interval = float(app.config["COUNT_FLUSH_SECONDS"])
        self.logger = app.logger
        self._pending: Counter[Key] = Counter()
        self._lock = threading.Lock()  # guards _pending
        self._writing = threading.Lock()  # one write at a time, so a flush() returns written
        self._thread: threading.Thread | None = None
        self._failed = False

    def add(self, keys: Counter[Key]) -> None:
        """Add counts (starting the writer thread on first use)."""
        with self._lock:
            self._pending.update(keys)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=_write_every,
                    args=(weakref.ref(self),),
                    daemon=True,
                    name="fraudapp-counts",
                )
                self._thread.start()

    def flush(self) -> int:
        """Write what is pending (added to the stored counts); how many predictions it counted.
        On failure the counts stay pending and the error is raised."""
        app = self._app()
        if app is None:
            return 0
        with self._writing:
            with self._lock:
                pending, self._pending = self._pending, Counter()
            if not pending:
                return 0
            try:
                with app.app_context():
                    _write(pending)
            except Exception:
                with self._lock:
                    self._pending.update(pending)
                raise
        return sum(pending.values())

    def pending(self) -> int:
        """Predictions counted here and not written yet."""
        with self._lock:
            return sum(self._pending.values())


def _write(pending: Counter[Key]) -> None:
    """Add the counts to the stored ones in one transaction of its own."""
    table = DailyCount.__table__
    with db.engine.begin() as connection:
        for (day, version, is_fraud, consented), n in sorted(pending.items()):
            statement = dialect_insert(table).values(
                day=day, model_version=version, is_fraud=is_fraud, consented=consented, count=n
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["day", "model_version", "is_fraud", "consented"],
                    set_={"count": table.c.count + n},
                )
            )


def _write_every(ref: weakref.ref[PendingCounts]) -> None:
    """The writer thread: a flush every interval, until its app is gone; errors are logged once
    per failing stretch and the counts kept."""
    stop = threading.Event()
    while (counts := ref()) is not None:
        interval = counts.interval
        del counts  # hold no reference while waiting: the app may go away meanwhile
        stop.wait(interval)
        counts = ref()
        if counts is None:
            return
        try:
            counts.flush()
        except Exception as exc:  # the thread must survive anything; the counts are kept
            if not counts._failed:
                counts.logger.error("writing the daily counts failed (will retry): %s", exc)
            counts._failed = True
        else:
            counts._failed = False
        del counts


_ALL: weakref.WeakSet[PendingCounts] = weakref.WeakSet()


def _counts(app: Flask) -> PendingCounts:
    counts = app.extensions.get(_EXTENSION)
    if counts is None:
        counts = app.extensions.setdefault(_EXTENSION, PendingCounts(app))
        _ALL.add(counts)
    return counts


def count_predictions(results) -> None:
    """Count scored transactions (results with `model_version`, `is_fraud` and `id`, None when
    not stored) under today's date; written by the background thread."""
    add_counts(Counter((r.model_version, bool(r.is_fraud), r.id is not None) for r in results))


def add_counts(counts: Counter[tuple[str, bool, bool]]) -> None:
    """Count predictions by (model version, is_fraud, consented) under today's date."""
    day = dt.datetime.now(dt.UTC).date()
    keys = Counter({(day, *key): n for key, n in counts.items() if n})
    if keys:
        _counts(current_app._get_current_object()).add(keys)


def flush() -> int:
    """Write the current app's pending counts now; how many predictions were written."""
    counts = current_app.extensions.get(_EXTENSION)
    return counts.flush() if counts is not None else 0


@atexit.register
def flush_all() -> None:
    """At the process's exit: write every app's pending counts (errors are logged, not raised)."""
    for counts in list(_ALL):
        try:
            counts.flush()
        except Exception as exc:  # exiting anyway: say what was lost
            counts.logger.error("daily counts lost at exit (%d): %s", counts.pending(), exc)
