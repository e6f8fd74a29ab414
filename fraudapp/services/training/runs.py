"""Training runs: queued by an admin, the CLI, a schedule or an alert; worked by the trainer
(`trainer.work`).

The trainer claims one queued run at a time (PostgreSQL: FOR UPDATE SKIP LOCKED, so two trainers
never take the same run; SQLite: a conditional UPDATE under its single writer lock), trains on the
labelled history, scores the candidate and the serving champion on the same, most recent validation
window, writes a registry version and applies the promotion policy. A heartbeat row update every few
seconds lets a dead trainer's run be found and failed (`fail_stale`: by the trainer loop, the runs
pages and every request for a run). The database holds at most one queued or running run (a partial
unique index), so simultaneous requests queue one run between them.
"""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ...extensions import db
from ...i18n import Message
from ...ml.metrics import evaluate, finite
from ...ml.registry import RegistryError
from ...ml.training import predict, split
from ...models import TrainingRun, utcnow
from .. import audit
from ..distribution import releases
from ..monitoring import shadow
from ..serving import registry
from ..transactions.history import load_history
from .train import choose_and_train, latest_windows, publish

ACTIVE = ("queued", "running")
CANCELLED, FAILED = Message("cancelled").stored(), Message("failed").stored()  # progress


class RunError(Exception):
    """A run that cannot be changed as asked."""


def request_run(reason: str, requested_by: str) -> TrainingRun:
    """Queue a run (or return the one already queued or running); audited; commits.

    A running run whose trainer went silent is failed first, so a dead trainer's run is not
    returned. Requests racing each other (several clicks, processes or nodes) get the same run:
    the database refuses a second active run and the loser returns the winner's.
    """
    fail_stale(current_app.config["TRAINER_STALE_SECONDS"])
    existing = _active()
    if existing:
        return existing
    run = TrainingRun(
        reason=reason,
        requested_by=requested_by,
        status="queued",
        progress=Message("waiting for a trainer").stored(),
    )
    db.session.add(run)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        existing = _active()
        if existing is None:  # not the one-active-run index: a real error
            raise
        return existing
    audit.record(
        "retrain.requested", target=f"run {run.id}", details={"reason": reason}, actor=requested_by
    )
    db.session.commit()
    return run


def cancel(run_id: int, by: str) -> TrainingRun:
    """Cancel a queued run at once, or ask a running one to stop before it publishes."""
    run = _get(run_id)
    if run.status == "queued":
        run.status, run.finished_at, run.progress = "cancelled", utcnow(), CANCELLED
    elif run.status == "running":
        run.cancel_requested = True
        run.progress = Message("cancelling").stored()
    else:
        raise RunError(
            Message(
                "run %(id)s is %(status)s: nothing to cancel", id=run_id, status=Message(run.status)
            )
        )
    audit.record("retrain.cancelled", target=f"run {run_id}", actor=by)
    db.session.commit()
    return run


def promote(version: str, by: str) -> None:
    """Serve a version on every node (checked loadable first); audited."""
    try:
        releases.release(version, "promote", by)
    except (RegistryError, releases.ReleaseError) as exc:
        db.session.rollback()
        raise RunError(str(exc)) from exc
    db.session.execute(
        update(TrainingRun).where(TrainingRun.version == version).values(promotion="promoted")
    )
    db.session.commit()


def start_shadow(version: str, by: str) -> None:
    """Put a version in shadow on every node (its run, if any, becomes "shadowing"); audited.
    RunError for the champion, an unknown version or one that does not load."""
    try:
        _shadow(version, by)
    except (RegistryError, releases.ReleaseError) as exc:
        db.session.rollback()
        raise RunError(str(exc)) from exc


def _shadow(version: str, by: str) -> None:
    """Shadow a version; its run becomes "shadowing", the run of the challenger it replaces
    awaits approval again."""
    replaced = releases.challenger()
    releases.start_shadow(version, by)
    if replaced not in (None, version):
        _mark_run(replaced, "awaiting approval", only="shadowing")
    _mark_run(version, "shadowing")


def stop_shadow(by: str) -> str:
    """End the shadow; the version that was in it (its run awaits approval again); audited."""
    try:
        version = releases.stop_shadow(by)
    except releases.ReleaseError as exc:
        db.session.rollback()
        raise RunError(str(exc)) from exc
    _mark_run(version, "awaiting approval", only="shadowing")
    return version


def _mark_run(version: str, promotion: str, only: str | None = None) -> None:
    statement = update(TrainingRun).where(TrainingRun.version == version)
    if only is not None:
        statement = statement.where(TrainingRun.promotion == only)
    db.session.execute(statement.values(promotion=promotion))
    db.session.commit()


def shadow_evidence() -> dict | None:
    """The champion against the challenger in shadow on their shared labelled transactions
    (`monitoring.shadow.compare`); None without a challenger."""
    version, champion = releases.challenger(), releases.current()
    if version is None or champion is None:
        return None
    return shadow.compare(champion, version)


def run_of(version: str) -> int | None:
    """The training run that produced a version (None: trained by the CLI or imported)."""
    return db.session.scalar(
        select(TrainingRun.id).where(TrainingRun.version == version).order_by(TrainingRun.id)
    )


def shadow_run_id() -> int | None:
    """The training run of the challenger in shadow, if any."""
    version = releases.challenger()
    return None if version is None else run_of(version)


def review_shadow() -> str | None:
    """Apply the shadow policy (PROMOTE_SHADOW_DAYS > 0): promote the challenger once it has that
    many labelled days of shadow predictions and its AP on those shared transactions is at least
    the champion's minus PROMOTE_AP_MARGIN, else leave it in shadow; what was done (None: no
    challenger, or the policy is off)."""
    config = current_app.config
    days, version = config["PROMOTE_SHADOW_DAYS"], releases.challenger()
    champion = releases.current()
    if days <= 0 or version is None or champion is None:
        return None
    evidence = shadow.compare(champion, version)
    if evidence["days"] < days:
        return f"{version} stays in shadow: {evidence['days']} of {days} labelled days"
    mine, theirs = evidence["challenger"]["ap"], evidence["champion"]["ap"]
    if mine is None or (theirs is not None and mine < theirs - config["PROMOTE_AP_MARGIN"]):
        return f"{version} stays in shadow: AP {_ap(mine)} against {champion}'s {_ap(theirs)}"
    details = {"shadow_days": evidence["days"], "challenger_ap": mine, "champion_ap": theirs}
    releases.release(version, "promote", "trainer", details=details)
    _mark_run(version, "promoted")
    return f"promoted {version}: AP {_ap(mine)} against {champion}'s {_ap(theirs)}"


def _ap(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def rollback(by: str) -> str:
    """Serve the version that served before the current one, on every node; audited."""
    previous = releases.previous()
    if previous is None:
        raise RunError(Message("no earlier version to roll back to"))
    try:
        releases.release(previous, "rollback", by)
    except (RegistryError, releases.ReleaseError) as exc:
        db.session.rollback()
        raise RunError(str(exc)) from exc
    return previous


def _active() -> TrainingRun | None:
    return db.session.scalar(
        select(TrainingRun).where(TrainingRun.status.in_(ACTIVE)).order_by(TrainingRun.id)
    )


def _get(run_id: int) -> TrainingRun:
    run = db.session.get(TrainingRun, run_id)
    if run is None:
        raise RunError(Message("no run %(id)s", id=run_id))
    return run


def recent(limit: int = 50) -> list[TrainingRun]:
    """The latest runs, newest first."""
    return list(
        db.session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit))
    )


def fail_stale(max_silence: float) -> int:
    """Mark failed the running runs whose trainer has been silent for more than `max_silence`
    seconds (killed with no chance to say so, its machine gone, or cut from the database); how
    many. The error says when the last heartbeat came."""
    limit = utcnow() - dt.timedelta(seconds=max_silence)
    stale = db.session.execute(
        select(TrainingRun.id, TrainingRun.heartbeat_at).where(
            TrainingRun.status == "running", TrainingRun.heartbeat_at < limit
        )
    ).all()
    failed = 0
    for run_id, heartbeat_at in stale:
        result = db.session.execute(
            update(TrainingRun)
            .where(
                TrainingRun.id == run_id,
                TrainingRun.status == "running",
                TrainingRun.heartbeat_at < limit,
            )
            .values(
                status="failed",
                finished_at=utcnow(),
                progress=FAILED,
                error=Message(
                    "the trainer stopped sending heartbeats at %(time)s UTC "
                    "(it died or lost the database)",
                    time=heartbeat_at.strftime("%H:%M:%S"),
                ).stored(),
            )
            .execution_options(synchronize_session=False)
        )
        failed += result.rowcount
    db.session.commit()
    return failed


def fail_worker(worker: str, error: Message) -> list[int]:
    """Mark failed the runs this trainer is running (it is stopping); their ids; commits."""
    ids = list(
        db.session.scalars(
            select(TrainingRun.id).where(
                TrainingRun.worker == worker, TrainingRun.status == "running"
            )
        )
    )
    if ids:
        db.session.execute(
            update(TrainingRun)
            .where(TrainingRun.id.in_(ids), TrainingRun.status == "running")
            .values(status="failed", finished_at=utcnow(), progress=FAILED, error=error.stored())
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return ids


def claim(worker: str) -> TrainingRun | None:
    """Take the oldest queued run for this worker, or None."""
    query = (
        select(TrainingRun.id)
        .where(TrainingRun.status == "queued")
        .order_by(TrainingRun.id)
        .limit(1)
    )
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    run_id = db.session.scalar(query)
    if run_id is None:
        db.session.rollback()
        return None
    now = utcnow()
    taken = db.session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == run_id, TrainingRun.status == "queued")
        .values(
            status="running",
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            progress=Message("loading the labelled history").stored(),
        )
    )
    db.session.commit()
    return db.session.get(TrainingRun, run_id) if taken.rowcount else None


def schedule_due(every_days: float | None) -> TrainingRun | None:
    """Queue a scheduled run when the last one is older than `every_days` (None: off)."""
    if not every_days:
        return None
    last = db.session.scalar(select(TrainingRun.created_at).order_by(TrainingRun.id.desc()))
    if last is not None and last > utcnow() - dt.timedelta(days=every_days):
        return None
    return request_run("schedule", "schedule")


def execute(run: TrainingRun) -> TrainingRun:
    """Train, evaluate against the champion, publish and apply the promotion policy; commits."""
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, daemon=True, args=(current_app._get_current_object(), run.id, stop)
    )
    beat.start()
    try:
        _execute(run)
    except Exception as exc:  # noqa: BLE001 — the run records any failure
        db.session.rollback()
        run = db.session.get(TrainingRun, run.id)
        run.status, run.error, run.progress = (
            "failed",
            Message(
                "%(error)s: %(reason)s", error=type(exc).__name__, reason=str(exc)[:1500]
            ).stored(),
            FAILED,
        )
        run.finished_at = utcnow()
        db.session.commit()
    finally:
        stop.set()
        beat.join()
    return run


def _heartbeat(app, run_id: int, stop: threading.Event) -> None:
    interval = app.config["TRAINER_HEARTBEAT_SECONDS"]
    with app.app_context():
        while not stop.wait(interval):
            try:
                db.session.execute(
                    update(TrainingRun)
                    .where(TrainingRun.id == run_id)
                    .values(heartbeat_at=utcnow())
                )
                db.session.commit()
            except SQLAlchemyError as exc:  # a database blip: beat again at the next interval
                db.session.rollback()
                app.logger.warning("run %s: heartbeat not saved: %s", run_id, exc)
        db.session.remove()


def _step(run: TrainingRun, progress: Message) -> None:
    """Save what the run knows so far with its progress; stop here if cancelled, or if the run
    was failed meanwhile (its heartbeats were late: another process took this trainer for dead)."""
    status = db.session.scalar(select(TrainingRun.status).where(TrainingRun.id == run.id))
    if status != "running":
        raise _Abandoned(status)
    run.progress = progress.stored()
    db.session.commit()
    if db.session.scalar(select(TrainingRun.cancel_requested).where(TrainingRun.id == run.id)):
        raise _Cancelled()


class _Cancelled(Exception):
    pass


class _Abandoned(Exception):
    pass


def _execute(run: TrainingRun) -> None:
    config = current_app.config
    history = load_history()
    windows = latest_windows(
        config["RETRAIN_TRAIN_DAYS"],
        config["RETRAIN_DELAY_DAYS"],
        config["RETRAIN_VALIDATION_DAYS"],
    )
    _record_windows(run, history, windows)
    try:
        _step(run, _training_progress(run, config))
        result, choice = choose_and_train(history, windows)
        _step(run, Message("evaluating the candidate and the champion"))
        _record_windows(run, history, result.windows)
        run.params = choice.as_dict() if choice else None
        run.candidate_metrics = finite(result.metrics)
        _, valid_rows = split(history, result.windows)
        run.champion_version, champion = _champion_metrics(history, valid_rows)
        run.champion_metrics = finite(champion)
        _step(run, Message("publishing"))
    except _Cancelled:
        run.status, run.progress, run.finished_at = "cancelled", CANCELLED, utcnow()
        db.session.commit()
        return
    except _Abandoned:
        db.session.rollback()  # keep the failure another process recorded; publish nothing
        return
    run.version = publish(result, history)
    run.promotion = _apply_policy(run)
    run.status, run.progress, run.finished_at = "succeeded", Message("done").stored(), utcnow()
    db.session.commit()


def _record_windows(run: TrainingRun, history, windows) -> None:
    """The run's windows, training rows and label counts."""
    train_rows, _ = split(history, windows)
    run.windows, run.train_rows = windows.as_dict(), len(train_rows)
    run.labels = _label_counts(history, train_rows)


def _training_progress(run: TrainingRun, config) -> Message:
    """What the run says while it trains."""
    days = tuple(config["RETRAIN_WINDOW_CHOICES"])
    if not days:
        return Message(
            "training on %(rows)s labelled transactions", rows=format(run.train_rows, ",")
        )
    trials = len(days) * len(config["RETRAIN_PARAM_VARIANTS"] or {"default": {}})
    return Message(
        "choosing among %(trials)s training windows and parameters, then training", trials=trials
    )


def _label_counts(history, rows: np.ndarray) -> dict:
    labels = history.label[rows]
    return {"labelled": int(np.sum(labels >= 0)), "frauds": int(np.sum(labels == 1))}


def _champion_metrics(history, rows: np.ndarray) -> tuple[str | None, dict | None]:
    """The serving model's metrics on the candidate's validation rows."""
    reg = registry()
    version = releases.current()
    if version is None or len(rows) == 0:
        return version, None
    try:
        champion = reg.load(version)
    except RegistryError:
        return version, None
    x = history.features()[rows]
    y = (history.label[rows] == 1).astype(int)
    scores = predict(champion.booster, champion.own(x))
    return version, evaluate(
        scores, y, history.day[rows], history.customer[rows], champion.threshold
    )


def _apply_policy(run: TrainingRun) -> str:
    """Promote when the candidate's AP is at least the champion's minus the margin and enough
    labels were seen — or, with PROMOTE_SHADOW_DAYS > 0 and a champion serving, put it in shadow
    first (`review_shadow` promotes it later); otherwise leave it awaiting an admin's approval."""
    config = current_app.config
    candidate = (run.candidate_metrics or {}).get("ap")
    champion = (run.champion_metrics or {}).get("ap")
    enough = run.labels["labelled"] >= config["PROMOTE_MIN_LABELS"]
    better = candidate is not None and (
        champion is None or candidate >= champion - config["PROMOTE_AP_MARGIN"]
    )
    if enough and better and config["PROMOTE_SHADOW_DAYS"] > 0 and run.champion_version:
        _shadow(run.version, "trainer")
        return "shadowing"
    if enough and better:
        releases.release(
            run.version,
            "promote",
            "trainer",
            details={"run": run.id, "candidate_ap": candidate, "champion_ap": champion},
        )
        return "promoted"
    return "awaiting approval"
