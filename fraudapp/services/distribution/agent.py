"""The node agent: every process of a node converges on the database's current version and
reports what it serves (the nodes page reads these reports)."""

from __future__ import annotations

import datetime as dt
import random
import socket
import threading

from flask import current_app
from sqlalchemy import select

from ...errors import unreachable
from ...extensions import db
from ...ml.registry import RegistryError
from ...models import NodeStatus, dialect_insert, utcnow
from ..serving import challenger_state, model_state
from .releases import ReleaseError, current, sync, sync_challenger

FALLBACK_PREFIX = "serving "  # starts the heartbeat's error of a process serving a fallback


class Guard:
    """Keeps a background loop alive and honest: each distinct error is logged once with its
    traceback (repeats are counted), and the wait before the next try doubles from
    BACKGROUND_RETRY_FIRST_SECONDS up to BACKGROUND_RETRY_MAX_SECONDS; a success resets both. An
    unreachable database goes into the worker's one log line per outage instead."""

    def __init__(self, name: str, app) -> None:
        self.name, self.logger = name, app.logger
        self.outage = app.extensions.get("fraudapp.outage")
        self.first = float(app.config["BACKGROUND_RETRY_FIRST_SECONDS"])
        self.ceiling = float(app.config["BACKGROUND_RETRY_MAX_SECONDS"])
        self.failures = 0
        self.logged: str | None = None

    def failed(self, exc: BaseException) -> float:
        """Log the error unless it repeats the last one; seconds to wait before retrying."""
        self.failures += 1
        key = describe(exc)
        if unreachable(exc) and self.outage is not None:
            self.outage.failed(exc, refused=False)  # one line per outage, with the requests'
        elif key != self.logged:
            self.logged = key
            self.logger.error(
                "%s failed (retrying with back-off): %s", self.name, key, exc_info=exc
            )
        return min(self.first * 2 ** (self.failures - 1), self.ceiling)

    def succeeded(self) -> None:
        """A round went through: back to the normal pace (logged when it follows failures)."""
        if self.failures:
            self.logger.warning("%s works again after %d failed tries", self.name, self.failures)
        self.failures, self.logged = 0, None


def describe(exc: BaseException) -> str:
    """An error as the nodes page shows it: its type and first line."""
    if isinstance(exc, ReleaseError | RegistryError):
        return str(exc)[:500]
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500]


def node_name() -> str:
    """This process's name on the nodes page."""
    config = current_app.config
    return config["NODE_NAME"] or config["NODE_URL"] or socket.gethostname()


def heartbeat(error: str | None = None, note: str | None = None) -> None:
    """Report the version this process serves (and why, when it is not the released one: a
    damaged model file; and when the challenger in shadow cannot be scored here — `note`, or this
    worker's own failure to load it), and either a success or the error of this round (kept as
    the last error until the next one); commits."""
    config = current_app.config
    now = utcnow()
    state = model_state()
    shown = "; ".join(filter(None, [error, note or _challenger_problem()])) or None
    if state.degraded:
        served = f"{FALLBACK_PREFIX}{state.serving or 'nothing'} instead of {state.released}"
        shown = "; ".join(filter(None, [f"{served}: {state.problem}", shown]))
    values = {
        "name": node_name(),
        "role": config["ROLE"],
        "url": config["NODE_URL"],
        "version": state.serving,
        "error": (shown or None) and shown[:500],
        "heartbeat_at": now,
    }
    if error:
        values |= {"last_error": error[:500], "last_error_at": now}
    else:
        values["last_success_at"] = now
    statement = dialect_insert(NodeStatus.__table__).values(values)
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={key: value for key, value in values.items() if key != "name"},
        )
    )
    db.session.commit()


def _challenger_problem() -> str | None:
    """Why this worker cannot score with the challenger in shadow (None: it can, or none)."""
    version, problem = challenger_state()
    return problem and f"challenger {version}: {problem}"


def nodes() -> list[dict]:
    """Every process that reported, with whether it is behind the current version or silent."""
    target = current()
    silent_after = dt.timedelta(seconds=3 * current_app.config["NODE_SYNC_SECONDS"] + 30)
    now = utcnow()
    rows = []
    for row in db.session.scalars(select(NodeStatus).order_by(NodeStatus.name)):
        seen = row.heartbeat_at
        rows.append(
            {
                "name": row.name,
                "role": row.role,
                "url": row.url,
                "version": row.version,
                "heartbeat_at": seen,
                "error": row.error,
                "last_success_at": row.last_success_at,
                "last_error": row.last_error,
                "last_error_at": row.last_error_at,
                "degraded": (row.error or "").startswith(FALLBACK_PREFIX),
                "behind": row.version != target,
                "silent": now - seen > silent_after,
            }
        )
    return rows


def start_agent(app, stop: threading.Event | None = None) -> threading.Thread | None:
    """Start this worker's sync-and-heartbeat thread (a node converges on start, then every
    NODE_SYNC_SECONDS) until `stop` is set (never, by default); None when switched off
    (NODE_SYNC_SECONDS = 0)."""
    interval = float(app.config["NODE_SYNC_SECONDS"])
    if interval <= 0:
        return None
    thread = threading.Thread(
        target=_agent,
        args=(app, interval, stop or threading.Event()),
        daemon=True,
        name="fraudapp-node-agent",
    )
    thread.start()
    return thread


def _agent(app, interval: float, stop: threading.Event) -> None:
    """The thread: a tick every `interval` (with jitter); whatever a tick raises is logged and
    retried with back-off, so the thread outlives any fault."""
    guard = Guard("node agent", app)
    while not stop.is_set():
        wait = interval * random.uniform(0.8, 1.2)  # noqa: S311 (jitter)
        try:
            with app.app_context():
                try:
                    tick()
                finally:
                    db.session.remove()
            guard.succeeded()
        except Exception as exc:  # the thread must survive anything
            wait = guard.failed(exc)
        stop.wait(wait)


def tick() -> None:
    """One round of the agent: converge on the current version, then report it with this round's
    success or error; raises what went wrong (after reporting it, when the database allows)."""
    failure, note = None, None
    try:
        sync()
        note = sync_challenger()  # a challenger that cannot be installed is only reported
    except Exception as exc:  # reported below, then raised
        db.session.rollback()
        failure = exc
    try:
        heartbeat(failure and describe(failure), note)
    except Exception:
        db.session.rollback()
        if failure is None:
            raise
    if failure is not None:
        raise failure
