"""The trainer process: the loop that works queued training runs, and beside it the courier thread
that keeps model distribution moving (catalog, announcements, webhook deliveries, its own sync)."""

from __future__ import annotations

import os
import socket
import threading
import time

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from ...extensions import db
from ...ml.registry import RegistryError
from ..distribution import agent, catalog, outbox, releases
from .runs import claim, execute, fail_stale, schedule_due


def worker_name() -> str:
    """host:pid of this trainer."""
    return f"{socket.gethostname()}:{os.getpid()}"


def work(once: bool, poll_seconds: float, log=print) -> int:
    """The trainer loop: fail stale runs, queue scheduled ones, claim and execute; runs done.

    Beside it, a thread delivers due webhooks every second and keeps this process's registry on
    the current version (with a heartbeat) every NODE_SYNC_SECONDS.
    """
    config = current_app.config
    name = worker_name()
    done = 0
    stop = threading.Event()
    courier = threading.Thread(
        target=_courier, daemon=True, args=(current_app._get_current_object(), stop)
    )
    courier.start()
    try:
        while True:
            fail_stale(config["TRAINER_STALE_SECONDS"])
            schedule_due(config["RETRAIN_EVERY_DAYS"])
            run = claim(name)
            if run is None:
                if once:
                    return done
                stop.wait(poll_seconds)
                continue
            log(f"run {run.id}: started ({run.reason}, asked by {run.requested_by})")
            run = execute(run)
            done += 1
            log(
                f"run {run.id}: {run.status}"
                + (f", version {run.version} {run.promotion}" if run.version else "")
                + (f" — {run.error}" if run.error else "")
            )
    finally:
        stop.set()
        courier.join()


def _courier(app, stop: threading.Event) -> None:
    """Advertise this registry's versions in the catalog once; then announce releases made on
    nodes and deliver due webhooks every second; sync and report every NODE_SYNC_SECONDS."""
    sync_every = float(app.config["NODE_SYNC_SECONDS"]) or float("inf")
    synced_at = float("-inf")
    advertised = False
    while not stop.is_set():
        with app.app_context():
            try:
                if not advertised:
                    catalog.advertise()
                    advertised = True
                if time.monotonic() - synced_at >= sync_every:
                    agent.tick()
                    synced_at = time.monotonic()
                releases.announce_pending()
                outbox.deliver_due()
            except (SQLAlchemyError, RegistryError, releases.ReleaseError) as exc:
                db.session.rollback()
                app.logger.error("trainer: model distribution: %s", exc)
            db.session.remove()
        stop.wait(1.0)
