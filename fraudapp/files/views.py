"""Score a file: upload (analysts and admins), the job's page with its progress, the download."""

from __future__ import annotations

from flask import abort, flash, jsonify, redirect, render_template, send_file, url_for
from flask_babel import gettext
from flask_login import current_user

from ..auth.decorators import role_required
from ..security import body_limit
from ..services.transactions import file_jobs
from . import bp
from .forms import DeleteResultForm, UploadForm


def _job_or_404(key: str):
    try:
        return file_jobs.job_for(key, current_user)
    except file_jobs.JobNotFound:
        abort(404, gettext("No file job of yours has this address (it may have been deleted)."))


def _index(form: UploadForm, status: int = 200):
    return (
        render_template(
            "files/index.html",
            form=form,
            jobs=file_jobs.jobs_of(current_user),
            **file_jobs.upload_facts(),
        ),
        status,
    )


@bp.route("/files", methods=["GET", "POST"])
@body_limit("FILE_MAX_BYTES", spool_to="FILE_DIR")
@role_required("analyst")
def index():
    """The upload form and the user's recent jobs; a valid upload queues a job."""
    form = UploadForm()
    if form.validate_on_submit():
        job = file_jobs.submit(form.file.data, bool(form.store.data), current_user)
        return redirect(url_for("files.job", key=job.key), code=303)
    return _index(form, 400 if form.errors else 200)


@bp.errorhandler(413)
def too_large(error):
    """An upload over FILE_MAX_BYTES: the form again, saying so."""
    form = UploadForm(formdata=None)
    form.file.errors = [file_jobs.too_large_message()]
    return _index(form, 413)


@bp.get("/files/<key>")
@role_required("analyst")
def job(key: str):
    """A job's status and progress (refreshed by static/files.js), then its summary."""
    job = _job_or_404(key)
    return render_template(
        "files/job.html", job=job, delete_form=DeleteResultForm(), **file_jobs.page_facts(job)
    )


@bp.get("/files/<key>/status")
@role_required("analyst")
def job_status(key: str):
    """The job's status and progress as JSON, for the page's polling script."""
    return jsonify(file_jobs.status(_job_or_404(key)))


@bp.get("/files/<key>/download")
@role_required("analyst")
def download(key: str):
    """The scored CSV (gzip)."""
    job = _job_or_404(key)
    path = file_jobs.download(job, current_user)
    if path is None:
        abort(
            404,
            gettext("This job has no scored file (it failed, is not finished, or was deleted)."),
        )
    return send_file(
        path,
        mimetype="application/gzip",
        as_attachment=True,
        download_name=file_jobs.download_name(job),
    )


@bp.post("/files/<key>/delete")
@role_required("analyst")
def delete(key: str):
    """Delete the scored file now."""
    job = _job_or_404(key)
    if DeleteResultForm().validate_on_submit():
        file_jobs.delete_result(job)
        flash(gettext("The scored file was deleted."), "success")
    return redirect(url_for("files.job", key=key), code=303)
