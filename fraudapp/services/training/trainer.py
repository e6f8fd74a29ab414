"""The trainer process: the loop that works queued training runs, and beside it the courier thread
that keeps model distribution moving (catalog, announcements, webhook deliveries, its own sync).

SIGTERM or SIGINT stops it at once, even mid-run: the run it was working is marked failed ("the
trainer was stopped (SIGTERM)"), the courier stops and the loop returns. Failed rather than queued
again: an admin sees why the run ended and queues another when it suits (a trainer stopped over and
over, by a deploy or an out-of-memory supervisor, would otherwise pick the same run up for ever).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time

from flask import current_app

from ...extensions import db
from ...i18n import Message, shown
from ..distribution import agent, catalog, outbox, releases
from .runs import claim, execute, fail_stale, fail_worker, review_shadow, schedule_due

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):  # noqa: N818 — like KeyboardInterrupt, not an error of the work
    """Raised in the trainer's main thread by SIGTERM or SIGINT, wherever it is, to unwind the
    run at once (a BaseException, so no `except Exception` on the way swallows it, and SQLAlchemy
    discards a connection it interrupted)."""

    def __init__(self, signum: int) -> None:
        self.signal = signal.Signals(signum).name
        super().__init__(self.signal)


SHADOW_REVIEW_SECONDS = 60.0  # how often the loop applies the shadow policy (`review_shadow`)


def worker_name() -> str:
    """host:pid of this trainer."""
    return f"{socket.gethostname()}:{os.getpid()}"


def work(once: bool, poll_seconds: float, log=print) -> int:
    """The trainer loop: fail stale runs, queue scheduled ones, claim and execute; runs done.

    Beside it, a thread delivers due webhooks every second and keeps this process's registry on
    the current version (with a heartbeat) every NODE_SYNC_SECONDS. SIGTERM/SIGINT (in the main
    thread) fail the current run, stop the courier and return.
    """
    config = current_app.config
    name = worker_name()
    done = 0
    stop = threading.Event()
    courier = threading.Thread(
        target=_courier, daemon=True, args=(current_app._get_current_object(), stop)
    )
    courier.start()
    previous = _raise_stopped_on_signals()
    review_due = 0.0
    try:
        while True:
            fail_stale(config["TRAINER_STALE_SECONDS"])
            schedule_due(config["RETRAIN_EVERY_DAYS"])
            if time.monotonic() >= review_due:  # the shadow policy, once a minute
                review_due = time.monotonic() + SHADOW_REVIEW_SECONDS
                outcome = review_shadow()
                if outcome and outcome.startswith("promoted"):
                    log(f"shadow: {outcome}")
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
                + (f" — {shown(run.error)}" if run.error else "")
            )
    except Stopped as exc:
        db.session.remove()  # the interrupted session may hold a broken transaction
        failed = fail_worker(
            name, Message("the trainer was stopped (%(signal)s)", signal=str(exc.signal))
        )
        log(
            f"trainer: stopped by {exc.signal}"
            + (f"; run {', '.join(map(str, failed))} marked failed" if failed else "")
        )
        return done
    finally:
        stop.set()
        courier.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _raise_stopped_on_signals() -> dict:
    """In the main thread, make the first SIGTERM or SIGINT raise `Stopped` (later ones are
    ignored while it unwinds); the handlers it replaced, to put back."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    received = []

    def handler(signum, _frame) -> None:
        if not received:
            received.append(signum)
            raise Stopped(signum)

    return {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}


def _courier(app, stop: threading.Event) -> None:
    """Advertise this registry's versions in the catalog once; then announce releases made on
    nodes and deliver due webhooks every second; sync and report every NODE_SYNC_SECONDS.

    Each of the three has its own back-off: whatever one raises is logged (once per distinct
    error), reported on the trainer's row of the nodes page when the database allows, and retried
    after 1, 2, 4 ... s, while the others go on; the thread never dies.
    """
    steps = {
        "catalog": (catalog.advertise, float("inf")),  # once
        "sync": (agent.tick, float(app.config["NODE_SYNC_SECONDS"]) or float("inf")),
        "webhooks": (_deliver, 1.0),
    }
    guards = {name: agent.Guard(f"trainer courier ({name})", app) for name in steps}
    due = dict.fromkeys(steps, 0.0)
    while not stop.is_set():
        for name, (step, every) in steps.items():
            if time.monotonic() >= due[name]:
                due[name] = time.monotonic() + _attempt(app, step, guards[name], every)
        stop.wait(1.0)


def _deliver() -> None:
    """Announce releases made on nodes, then deliver the webhooks due."""
    releases.announce_pending()
    outbox.deliver_due()


def _attempt(app, step, guard: agent.Guard, every: float) -> float:
    """Run one step of the courier; seconds until it is due again."""
    try:
        with app.app_context():
            try:
                step()
            except Exception as exc:
                db.session.rollback()
                if step is not agent.tick:  # a tick reports its own errors
                    with contextlib.suppress(Exception):  # the database may be the fault
                        agent.heartbeat(agent.describe(exc))
                raise
            finally:
                db.session.remove()
    except Exception as exc:  # the thread must survive anything
        return guard.failed(exc)
    guard.succeeded()
    return every
