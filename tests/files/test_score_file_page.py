"""Score a file: upload, the background job, progress, download, retention and who may see what."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import os
import threading
import time

import pytest
from flask import g
from sqlalchemy import event, func, select, update

from fraudapp.extensions import db
from fraudapp.i18n import shown
from fraudapp.models import AuditEvent, FileJob, Prediction, Transaction
from fraudapp.services import accounts
from fraudapp.services.transactions import file_jobs
from fraudapp.services.transactions.files import COLUMNS
from tests.conftest import login

HEADER = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n"


def _csv(rows: int = 12, bad_line: int | None = None) -> bytes:
    """A small Handbook-format file; `bad_line` (header is line 1) gets a negative amount."""
    lines = [HEADER]
    for i in range(rows):
        amount = "-5" if bad_line == i + 2 else f"{10 + 7.5 * i:.2f}"
        lines.append(f"f{i},2018-05-16 {i % 24:02d}:{i % 60:02d}:00,{i % 5},{i % 7},{amount},\n")
    return "".join(lines).encode()


def _upload(client, content: bytes, name: str = "batch.csv", store: bool = False):
    data = {"file": (io.BytesIO(content), name)}
    if store:
        data["store"] = "y"
    return client.post("/files", data=data, content_type="multipart/form-data")


def _upload_large(client, content: bytes, name: str = "large.csv"):
    """Upload a body over werkzeug's spooling size, encoded here: the test client's own encoding
    spools it to a temporary file it never closes."""
    boundary = "----fraudapp-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.post(
        "/files", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def _job() -> FileJob:
    db.session.expire_all()
    return db.session.scalar(select(FileJob).order_by(FileJob.id.desc()))


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def analyst(client, users):
    login(client, users["analyst"])
    return client


def test_upload_is_scored_by_a_job_and_downloaded_with_one_row_per_input(analyst):
    response = _upload(analyst, _csv(12), "batch.csv")
    assert response.status_code == 303
    job = _job()
    assert response.headers["Location"] == f"/files/{job.key}"
    assert job.status == "queued" and not job.store and os.path.exists(job.upload_path)
    assert analyst.get(f"/files/{job.key}/status").get_json()["status"] == "queued"
    page = analyst.get(f"/files/{job.key}").text
    assert 'data-active="true"' in page and "/static/files.js" in page  # it polls
    assert 'href="/files"' in analyst.get("/").text  # in the navigation

    assert file_jobs.work_once().status == "done"

    job = _job()
    assert job.rows_done == job.rows_total == 12 and job.upload_path is None
    assert job.summary["rows"] == 12 and sum(job.summary["histogram"]) == 12
    assert job.summary["stored"] == 0 and _count(Transaction) == 0
    page = analyst.get(f"/files/{job.key}").text
    assert (
        'id="summary"' in page and 'id="download"' in page and job.summary["model_version"] in page
    )
    assert analyst.get(f"/files/{job.key}/status").get_json() | {"error": None} == {
        "status": "done",
        "active": False,
        "rows_done": 12,
        "rows_total": 12,
        "percent": 100,
        "error": None,
    }

    download = analyst.get(f"/files/{job.key}/download")
    data = download.data
    download.close()  # send_file's file
    assert download.status_code == 200
    assert "batch.scored.csv.gz" in download.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(data).decode())))
    assert tuple(rows[0]) == COLUMNS
    assert sorted(row["TRANSACTION_ID"] for row in rows) == sorted(f"f{i}" for i in range(12))
    assert sum(int(row["is_fraud"]) for row in rows) == job.summary["flagged"]
    assert all(0 <= float(row["score"]) <= 1 for row in rows)
    assert all(bool(row["reasons"]) == (row["is_fraud"] == "1") for row in rows)  # flagged: why
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-2:] == ["file.upload", "file.download"]


def test_store_adds_the_rows_to_the_history_as_consented_predictions(analyst):
    _upload(analyst, _csv(8), store=True)
    assert file_jobs.work_once().status == "done"
    job = _job()
    assert job.store and job.summary["stored"] == 8
    assert _count(Transaction) == 8 and _count(Prediction) == 8
    stored = set(db.session.scalars(select(Transaction.external_id)))
    assert stored == {f"f{i}" for i in range(8)}


def test_a_bad_file_fails_naming_the_line_and_stores_nothing(analyst):
    _upload(analyst, _csv(10, bad_line=7), store=True)
    assert file_jobs.work_once().status == "failed"
    job = _job()
    assert "line 7: TX_AMOUNT" in shown(job.error) and job.result_path is None
    assert job.upload_path is None and _count(Transaction) == 0
    page = analyst.get(f"/files/{job.key}").text
    assert "line 7: TX_AMOUNT" in page and 'id="download"' not in page
    assert analyst.get(f"/files/{job.key}/download").status_code == 404


def test_a_file_not_csv_is_a_field_error_and_queues_nothing(analyst):
    response = _upload(analyst, b"hello", "notes.txt")
    assert response.status_code == 400
    assert "Choose a .csv or .csv.gz file." in response.text and "is-invalid" in response.text
    assert _count(FileJob) == 0
    assert _upload(analyst, gzip.compress(_csv(3)), "batch.CSV.GZ").status_code == 303


def test_uploads_have_their_own_larger_limit_and_a_clear_message_over_it(app, analyst):
    over_global = _csv(2) + b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    assert _upload_large(analyst, over_global).status_code == 303  # over 2 MB, under the limit
    assert os.path.getsize(_job().upload_path) == len(over_global)
    app.config["FILE_MAX_BYTES"] = 1024 * 1024
    response = _upload_large(analyst, over_global)
    assert response.status_code == 413
    assert "The file is larger than the limit of 1 MB." in response.text
    assert _count(FileJob) == 1
    assert analyst.post("/login", data={"x": "y" * (3 * 1024 * 1024)}).status_code == 413


def _switch_user() -> None:
    """Requests of the test clients share the test's app context, where Flask-Login keeps the
    user it loaded: forget it, so the next client's session cookie counts."""
    g.pop("_login_user", None)


def test_only_the_owner_and_admins_see_a_job(app, client, users):
    login(client, users["analyst"])
    _upload(client, _csv(3))
    file_jobs.work_once()
    key = _job().key
    client.post("/logout")
    _switch_user()
    for path in ("/files", f"/files/{key}", f"/files/{key}/download"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]

    other = app.test_client()
    accounts.create_user("other", "analyst", "password-123")
    _switch_user()
    login(other, "other")
    for path in (f"/files/{key}", f"/files/{key}/status", f"/files/{key}/download"):
        assert other.get(path).status_code == 404
    assert other.post(f"/files/{key}/delete").status_code == 404
    assert key not in other.get("/files").text

    admin = app.test_client()
    _switch_user()
    login(admin, users["admin"])
    assert admin.get(f"/files/{key}").status_code == 200
    download = admin.get(f"/files/{key}/download")
    download.close()
    assert download.status_code == 200


def test_a_job_whose_worker_died_is_failed_not_left_running(app, analyst):
    _upload(analyst, _csv(3))
    job = file_jobs.claim("dead:1", 2)
    assert job.status == "running"
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=app.config["FILE_STALE_SECONDS"] + 1)
    db.session.execute(update(FileJob).values(heartbeat_at=old))
    db.session.commit()
    status = analyst.get(f"/files/{job.key}/status").get_json()
    assert status["status"] == "failed" and "stopped sending heartbeats" in status["error"]
    assert _job().upload_path and not os.path.exists(_job().upload_path)


def test_a_silent_job_of_a_live_process_keeps_running(app, analyst):
    """Storing a big file on SQLite holds the write lock, so its heartbeats wait: a job whose
    process is alive on this host is not failed for that."""
    _upload(analyst, _csv(3))
    file_jobs.claim(file_jobs.worker_name(), 2)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=app.config["FILE_STALE_SECONDS"] + 1)
    db.session.execute(update(FileJob).values(heartbeat_at=old))
    db.session.commit()
    assert file_jobs.fail_stale(app.config["FILE_STALE_SECONDS"]) == 0
    assert _job().status == "running"


def test_claims_keep_to_the_limit_of_jobs_at_once(analyst):
    for _ in range(3):
        _upload(analyst, _csv(2))
    first = file_jobs.claim("w:1", 2)
    second = file_jobs.claim("w:2", 2)
    assert first.id != second.id
    assert file_jobs.claim("w:3", 2) is None
    assert file_jobs.claim("w:3", 3).status == "running"


def test_an_idle_poll_only_reads(app):
    """With no job waiting, a worker's round writes nothing and takes no lock, so it never makes
    a request's write wait (on SQLite, a waiting writer sleeps milliseconds)."""
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement.split()[0].upper())

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        assert file_jobs.work_once() is None
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert statements and set(statements) == {"SELECT"}
    assert not any("advisory" in s.lower() for s in statements)


def test_scored_files_are_deleted_after_their_time_or_on_request(app, analyst):
    for _ in range(2):
        _upload(analyst, _csv(2))
        file_jobs.work_once()
    first, second = db.session.scalars(select(FileJob).order_by(FileJob.id)).all()
    hours = app.config["FILE_RESULT_HOURS"]
    assert first.expires_at - first.finished_at == dt.timedelta(hours=hours)
    assert "deleted on" in analyst.get(f"/files/{first.key}").text

    path = first.result_path
    later = first.finished_at + dt.timedelta(hours=hours, seconds=1)
    assert file_jobs.expire_results(later) == 2
    assert not os.path.exists(path) and _job().result_path is None
    assert analyst.get(f"/files/{first.key}/download").status_code == 404

    _upload(analyst, _csv(2))
    file_jobs.work_once()
    third = _job()
    path = third.result_path
    assert os.path.exists(path)
    response = analyst.post(f"/files/{third.key}/delete")
    assert response.status_code == 303
    assert not os.path.exists(path) and _job().result_path is None
    assert "has been deleted" in analyst.get(f"/files/{third.key}").text


def test_the_worker_thread_runs_queued_jobs(app, analyst):
    app.config["FILE_POLL_SECONDS"] = 0.05
    stop = threading.Event()
    thread = file_jobs.start_file_worker(app, stop)
    try:
        _upload(analyst, _csv(4))
        deadline = time.monotonic() + 60
        while _job().status != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _job().status == "done"
    finally:
        stop.set()
        thread.join()


def _chunked(client, body: bytes, content_type: str):
    return client.post(
        "/files",
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked", "Content-Type": content_type},
        environ_base={"wsgi.input_terminated": True},  # as gunicorn says of a chunked body
    )


def test_a_chunked_upload_is_streamed_and_held_to_the_file_limit(app, analyst):
    boundary = "----chunked-boundary"
    content = _csv(3) + b"#" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f"multipart/form-data; boundary={boundary}"
    assert _chunked(analyst, body, content_type).status_code == 303
    assert os.path.getsize(_job().upload_path) == len(content)
    app.config["FILE_MAX_BYTES"] = len(body) - 1
    response = _chunked(analyst, body, content_type)
    assert response.status_code == 413 and "The file is larger than the limit" in response.text
    assert _count(FileJob) == 1


def test_uploads_are_spooled_in_the_file_folder_and_kept_without_a_copy(app, analyst, monkeypatch):
    spooled = []
    submit = file_jobs.submit

    def watch(upload, store, owner):
        spooled.append(upload.stream.name)
        return submit(upload, store, owner)

    monkeypatch.setattr(file_jobs, "submit", watch)
    content = _csv(5)
    assert _upload(analyst, content).status_code == 303
    folder = app.config["FILE_DIR"]
    assert os.path.dirname(spooled[0]) == folder  # not /tmp (often memory), not memory
    assert not os.path.exists(spooled[0])  # the spool file is gone with the request ...
    with open(_job().upload_path, "rb") as kept:  # ... its content kept under the job's name
        assert kept.read() == content
    assert not [name for name in os.listdir(folder) if name.startswith(".upload-")]
