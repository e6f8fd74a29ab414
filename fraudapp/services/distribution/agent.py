"""The node agent: every process of a node converges on the database's current version and
reports what it serves (the nodes page reads these reports)."""

from __future__ import annotations

import datetime as dt
import random
import socket
import threading

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ...extensions import db
from ...ml.registry import RegistryError
from ...models import NodeStatus, dialect_insert, utcnow
from ..serving import model_state
from .releases import ReleaseError, current, sync

FALLBACK_PREFIX = "serving "  # starts the heartbeat's error of a process serving a fallback


def node_name() -> str:
    """This process's name on the nodes page."""
    config = current_app.config
    return config["NODE_NAME"] or config["NODE_URL"] or socket.gethostname()


def heartbeat(error: str | None = None) -> None:
    """Report the version this process serves, and why when it is not the released one (a
    damaged model file); commits."""
    config = current_app.config
    state = model_state()
    if state.degraded:
        served = f"{FALLBACK_PREFIX}{state.serving or 'nothing'} instead of {state.released}"
        error = "; ".join(filter(None, [f"{served}: {state.problem}", error]))
    values = {
        "name": node_name(),
        "role": config["ROLE"],
        "url": config["NODE_URL"],
        "version": state.serving,
        "error": (error or None) and error[:500],
        "heartbeat_at": utcnow(),
    }
    statement = dialect_insert(NodeStatus.__table__).values(values)
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={key: value for key, value in values.items() if key != "name"},
        )
    )
    db.session.commit()


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
                "degraded": (row.error or "").startswith(FALLBACK_PREFIX),
                "behind": row.version != target,
                "silent": now - seen > silent_after,
            }
        )
    return rows


def start_agent(app) -> threading.Thread | None:
    """Start this worker's sync-and-heartbeat thread (a node converges on start, then every
    NODE_SYNC_SECONDS); None when switched off (NODE_SYNC_SECONDS = 0)."""
    interval = float(app.config["NODE_SYNC_SECONDS"])
    if interval <= 0:
        return None
    thread = threading.Thread(
        target=_agent, args=(app, interval), daemon=True, name="fraudapp-node-agent"
    )
    thread.start()
    return thread


def _agent(app, interval: float) -> None:
    while True:
        with app.app_context():
            tick()
        threading.Event().wait(interval * random.uniform(0.8, 1.2))  # noqa: S311 (jitter)


def tick() -> None:
    """One round of the agent: converge on the current version, then report."""
    error = None
    try:
        sync()
    except (ReleaseError, RegistryError) as exc:
        error = str(exc)
        current_app.logger.error("could not switch to the current model version: %s", exc)
    except SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.error("node sync: database unavailable: %s", exc)
        return
    try:
        heartbeat(error)
    except SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.error("node heartbeat: database unavailable: %s", exc)
