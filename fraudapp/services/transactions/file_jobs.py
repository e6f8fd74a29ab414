"""File jobs: an analyst's uploaded CSV scored in the background, with progress and a download.

The upload is saved to FILE_DIR on the node that received it and a queued job row is added. Every
web worker runs a thread (`start_file_worker`) that claims queued jobs of its node — at most
FILE_JOBS_AT_ONCE running across the deployment, claimed atomically — and runs `score_file`; a
heartbeat thread saves the progress and the time while it works. A running job whose heartbeat is
older than FILE_STALE_SECONDS (its worker was killed) is marked failed with a message saying so.

Retention: the upload is deleted when its job ends; the scored file FILE_RESULT_HOURS after, or
when its owner deletes it. Without `store` nothing of the file joins the history.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import secrets
import socket
import threading

from flask import current_app
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from ...extensions import db
from ...i18n import Message, shown
from ...models import FileJob, User, utcnow
from .. import audit
from ..distribution.agent import Guard, node_name
from .files import FileRefused, score_file

EXTENSIONS = (".csv.gz", ".csv")
RECENT = 20  # jobs listed on the upload page
_CLAIM_LOCK = 0x46494C45  # PostgreSQL advisory lock serialising claims ("FILE")


class JobNotFound(Exception):
    """No such job, or not one this user may see."""


def worker_name() -> str:
    """host:pid of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive_here(worker: str | None) -> bool:
    """Whether `worker` (host:pid) is a running process of this host."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def allowed_name(name: str) -> bool:
    """Whether a file name has an extension the page accepts (.csv or .csv.gz)."""
    return name.lower().endswith(EXTENSIONS)


def _folder() -> str:
    folder = current_app.config["FILE_DIR"]
    os.makedirs(folder, exist_ok=True)
    return folder


def _safe_name(name: str) -> str:
    """The uploaded file's base name, printable, for display and the download's name."""
    base = re.split(r"[\\/]", name or "")[-1]
    return audit.clean(base, 255) or "upload.csv"


def submit(upload, store: bool, owner: User) -> FileJob:
    """Keep an uploaded file (werkzeug FileStorage, already spooled to disk by the form parser)
    in FILE_DIR and queue its job; audited; commits."""
    name = _safe_name(upload.filename)
    job = FileJob(file_name=name, store=store, owner_id=owner.id, node=node_name())
    job.key = secrets.token_hex(16)
    suffix = ".csv.gz" if name.lower().endswith(".gz") else ".csv"
    job.upload_path = os.path.join(_folder(), f"{job.key}.upload{suffix}")
    try:
        _keep(upload, job.upload_path)
        db.session.add(job)
        audit.record(
            "file.upload",
            target=name,
            details={"job": job.key, "store": store},
            actor=owner.username,
        )
        db.session.commit()
    except BaseException:  # a full disk, the database gone: no file left behind without its job
        db.session.rollback()
        _remove(job.upload_path)
        raise
    return job


def _keep(upload, path: str) -> None:
    """Keep the upload at `path`: a hard link to the file the form parser spooled it to when that
    is in the same folder (no copy), else a copy in chunks."""
    spooled = getattr(upload.stream, "name", None)
    same_folder = isinstance(spooled, str) and os.path.dirname(
        os.path.abspath(spooled)
    ) == os.path.dirname(os.path.abspath(path))
    if same_folder:
        upload.stream.flush()
        try:
            os.link(spooled, path)
            return
        except OSError:  # a file system without hard links
            pass
    upload.save(path)


def jobs_of(user: User) -> list[FileJob]:
    """The user's most recent jobs, newest first."""
    return list(
        db.session.scalars(
            select(FileJob)
            .where(FileJob.owner_id == user.id)
            .order_by(FileJob.id.desc())
            .limit(RECENT)
        )
    )


def job_for(key: str, user: User) -> FileJob:
    """The job with this key if `user` owns it or is an admin; JobNotFound otherwise (a stranger
    learns nothing of whether it exists)."""
    job = db.session.scalar(select(FileJob).where(FileJob.key == key))
    if job is None or not (job.owner_id == user.id or user.has_role("admin")):
        raise JobNotFound(key)
    return job


def download(job: FileJob, user: User) -> str | None:
    """The path of the job's scored file (audited), or None when there is none (any more)."""
    path = job.result_path
    if job.status != "done" or not path or not os.path.exists(path):
        return None
    audit.record("file.download", target=job.file_name, details={"job": job.key})
    db.session.commit()
    return path


def download_name(job: FileJob) -> str:
    """The scored file's name for the browser: the upload's name with `.scored.csv.gz`."""
    base = job.file_name
    for extension in EXTENSIONS:
        if base.lower().endswith(extension):
            base = base[: -len(extension)]
            break
    return base + ".scored.csv.gz"


def too_large_message() -> str:
    """What an upload over FILE_MAX_BYTES is told."""
    return f"The file is larger than the limit of {_size(current_app.config['FILE_MAX_BYTES'])}."


def _size(count: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def status(job: FileJob) -> dict:
    """The job's status and progress for the page's polling script (stale jobs are failed
    first, so a job whose worker died turns failed on the page)."""
    if job.status == "running":
        fail_stale(current_app.config["FILE_STALE_SECONDS"])
        db.session.refresh(job)
    return {
        "status": job.status,
        "active": job.active,
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "percent": _percent(job),
        "error": shown(job.error) or None,
    }


def _percent(job: FileJob) -> int:
    if job.status == "done":
        return 100
    return int(100 * job.rows_done / job.rows_total) if job.rows_total else 0


def page_facts(job: FileJob) -> dict:
    """What the job's page shows besides the job: progress, histogram bars, retention."""
    histogram = (job.summary or {}).get("histogram") or []
    peak = max(histogram, default=0) or 1
    bars = [
        {
            "range": f"{i / 10:.1f}–{(i + 1) / 10:.1f}",
            "count": count,
            "width": round(100 * count / peak),
        }
        for i, count in enumerate(histogram)
    ]
    return {
        "percent": _percent(job),
        "bars": bars,
        "result_hours": current_app.config["FILE_RESULT_HOURS"],
    }


def upload_facts() -> dict:
    """What the upload page says of limits and retention."""
    config = current_app.config
    return {
        "max_size": _size(config["FILE_MAX_BYTES"]),
        "result_hours": config["FILE_RESULT_HOURS"],
    }


def delete_result(job: FileJob) -> None:
    """Delete the job's scored file now (the job row stays, saying so); audited; commits."""
    _remove(job.result_path)
    job.result_path = None
    job.expires_at = None
    audit.record("file.delete", target=job.file_name, details={"job": job.key})
    db.session.commit()


def _remove(path: str | None) -> None:
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def claim(worker: str, limit: int) -> FileJob | None:
    """Take this node's oldest queued job when fewer than `limit` jobs run anywhere; None
    otherwise. Claims are serialised (PostgreSQL: an advisory lock for the transaction; SQLite: one
    writer at a time), so the limit holds across processes and nodes; commits. The lock is taken
    only when a job waits: idle polls read and never make the requests' writes wait."""
    queued = select(FileJob.id).where(FileJob.status == "queued", FileJob.node == node_name())
    if db.session.scalar(queued.limit(1)) is None:
        db.session.rollback()
        return None
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK})
    else:  # take the write lock now, so the count below is still true when we update
        db.session.execute(update(FileJob).where(FileJob.id == -1).values(status="queued"))
    running = db.session.scalar(
        select(func.count()).select_from(FileJob).where(FileJob.status == "running")
    )
    job_id = None
    if running < limit:
        job_id = db.session.scalar(
            select(FileJob.id)
            .where(FileJob.status == "queued", FileJob.node == node_name())
            .order_by(FileJob.id)
            .limit(1)
        )
    if job_id is None:
        db.session.rollback()
        return None
    now = utcnow()
    db.session.execute(
        update(FileJob)
        .where(FileJob.id == job_id, FileJob.status == "queued")
        .values(status="running", worker=worker, started_at=now, heartbeat_at=now)
    )
    db.session.commit()
    return db.session.get(FileJob, job_id)


def run(job: FileJob) -> FileJob:
    """Score the job's file; done with its summary, or failed with the reason (a refused file:
    the line and what is wrong with it); the upload is deleted either way; commits."""
    progress = {"done": 0, "total": None}
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat,
        daemon=True,
        args=(current_app._get_current_object(), job.id, progress, stop),
        name="fraudapp-file-heartbeat",
    )
    beat.start()
    result_path = os.path.join(_folder(), f"{job.key}.scored.csv.gz")
    try:
        summary = score_file(
            job.upload_path,
            result_path,
            store=job.store,
            progress=lambda done, total: progress.update(done=done, total=total),
        )
        error = None
    except FileRefused as exc:
        error = Message("the file was refused, nothing was stored: %(reason)s", reason=exc)
    except Exception as exc:  # noqa: BLE001 — the job records any failure
        current_app.logger.exception("file job %s failed", job.id)
        error = Message(
            "scoring failed: %(error)s: %(reason)s",
            error=type(exc).__name__,
            reason=str(exc)[:1500],
        )
    finally:
        stop.set()
        beat.join()
    db.session.rollback()
    return _finish(job.id, None if error else summary, error, result_path)


def _finish(job_id: int, summary, error: Message | None, result_path: str) -> FileJob:
    job = db.session.get(FileJob, job_id)
    _remove(job.upload_path)
    now = utcnow()
    job.upload_path, job.finished_at, job.heartbeat_at = None, now, now
    if job.status != "running":  # failed meanwhile as stale: keep that verdict, drop the output
        _remove(result_path)
    elif error is not None:
        job.status, job.error = "failed", error.stored()
        _remove(result_path)
    else:
        job.status, job.result_path = "done", result_path
        job.rows_done = job.rows_total = summary.rows
        job.summary = {
            "rows": summary.rows,
            "flagged": summary.flagged,
            "threshold": summary.threshold,
            "model_version": summary.model_version,
            "stored": summary.stored,
            "histogram": list(summary.histogram),
        }
        job.expires_at = now + dt.timedelta(hours=current_app.config["FILE_RESULT_HOURS"])
    db.session.commit()
    return job


def _heartbeat(app, job_id: int, progress: dict, stop: threading.Event) -> None:
    """Save the job's progress and heartbeat every FILE_HEARTBEAT_SECONDS until `stop`."""
    interval = float(app.config["FILE_HEARTBEAT_SECONDS"])
    with app.app_context():
        while not stop.wait(interval):
            try:
                db.session.execute(
                    update(FileJob)
                    .where(FileJob.id == job_id, FileJob.status == "running")
                    .values(
                        heartbeat_at=utcnow(),
                        rows_done=progress["done"],
                        rows_total=progress["total"],
                    )
                )
                db.session.commit()
            except SQLAlchemyError as exc:  # a database blip: beat again at the next interval
                db.session.rollback()
                app.logger.warning("file job %s: heartbeat not saved: %s", job_id, exc)
        db.session.remove()


def fail_stale(seconds: float) -> int:
    """Mark failed the running jobs whose heartbeat is older than `seconds` (their worker was
    killed or lost the database); how many; commits."""
    cutoff = utcnow() - dt.timedelta(seconds=seconds)
    silent = db.session.scalars(
        select(FileJob).where(FileJob.status == "running", FileJob.heartbeat_at < cutoff)
    )
    # A job whose process runs on this host is alive, heartbeat or not: on SQLite a file being
    # stored holds the write lock until it commits, and its heartbeats wait.
    stale = [job for job in silent if not _alive_here(job.worker)]
    for job in stale:
        db.session.execute(
            update(FileJob)
            .where(FileJob.id == job.id, FileJob.status == "running")
            .values(
                status="failed",
                finished_at=utcnow(),
                error=Message(
                    "the worker scoring this file stopped sending heartbeats at %(time)s UTC (it "
                    "was stopped or lost the database); nothing was stored unless the store "
                    "option was on — upload the file again",
                    time=job.heartbeat_at.strftime("%H:%M:%S"),
                ).stored(),
            )
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    for job in stale:  # its upload, if this node has it
        db.session.refresh(job)
        if job.upload_path and job.node == node_name():
            _remove(job.upload_path)
    return len(stale)


def expire_results(now: dt.datetime | None = None) -> int:
    """Delete this node's scored files past their time; how many; commits."""
    now = now or utcnow()
    expired = list(
        db.session.scalars(
            select(FileJob).where(
                FileJob.expires_at < now,
                FileJob.result_path.is_not(None),
                FileJob.node == node_name(),
            )
        )
    )
    for job in expired:
        _remove(job.result_path)
        job.result_path, job.expires_at = None, None
    db.session.commit()
    return len(expired)


def work_once() -> FileJob | None:
    """One round of a worker: fail stale jobs, delete expired files, claim and run one job; the
    job it ran, or None."""
    config = current_app.config
    fail_stale(config["FILE_STALE_SECONDS"])
    expire_results()
    job = claim(worker_name(), config["FILE_JOBS_AT_ONCE"])
    if job is None:
        return None
    current_app.logger.info("file job %s: scoring %s", job.id, job.file_name)
    job = run(job)
    current_app.logger.info(
        "file job %s: %s%s", job.id, job.status, f" — {shown(job.error)}" if job.error else ""
    )
    return job


def start_file_worker(app, stop: threading.Event | None = None) -> threading.Thread | None:
    """Start this process's file-job thread (every FILE_POLL_SECONDS, at once after a job) until
    `stop` is set; None when switched off (FILE_POLL_SECONDS = 0)."""
    interval = float(app.config["FILE_POLL_SECONDS"])
    if interval <= 0:
        return None
    thread = threading.Thread(
        target=_worker,
        args=(app, interval, stop or threading.Event()),
        daemon=True,
        name="fraudapp-file-worker",
    )
    thread.start()
    return thread


def _worker(app, interval: float, stop: threading.Event) -> None:
    """The thread: whatever a round raises is logged and retried with back-off (Guard), so the
    thread outlives any fault."""
    guard = Guard("file worker", app)
    while not stop.is_set():
        wait = interval * random.uniform(0.8, 1.2)  # noqa: S311 (jitter)
        try:
            with app.app_context():
                try:
                    if work_once() is not None:
                        wait = 0.0
                finally:
                    db.session.remove()
            guard.succeeded()
        except Exception as exc:  # the thread must survive anything
            wait = guard.failed(exc)
        stop.wait(wait)
