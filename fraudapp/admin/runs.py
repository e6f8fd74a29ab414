"""Admin pages of training runs: the runs and the registry, one run's progress, and the buttons
that queue a run, cancel it, promote a version, roll back, and shadow a version or stop its shadow
(all POST, CSRF, post/redirect/get)."""

from __future__ import annotations

from flask import current_app, flash, jsonify, redirect, render_template, url_for
from flask_babel import gettext
from flask_login import current_user

from ..auth.decorators import role_required
from ..extensions import db
from ..i18n import shown
from ..models import TrainingRun
from ..services.distribution import catalog, releases
from ..services.training import runs as runs_service
from . import bp

METRICS = ("auc", "ap", "cp_at_100", "precision", "recall", "f1", "threshold")


@bp.get("/runs")
@role_required("admin")
def training_runs():
    """Recent runs, the registry's versions with the serving one, the triggers and the buttons.

    A running run whose trainer went silent is failed first (no trainer may be left to notice)."""
    _fail_stale()
    return render_template(
        "admin/runs.html",
        runs=runs_service.recent(),
        serving=releases.current(),
        challenger=releases.challenger(),
        versions=catalog.versions(),
        previous=releases.previous(),
        every_days=current_app.config["RETRAIN_EVERY_DAYS"],
        on_alert=current_app.config["RETRAIN_ON_ALERT"],
    )


@bp.post("/runs")
@role_required("admin")
def retrain():
    """Queue a run for the trainer (or show the one already queued or running; a run whose
    trainer went silent is failed and a new one queued)."""
    run = runs_service.request_run("admin", current_user.username)
    if run.status == "queued":
        flash(
            gettext("Training run %(id)s is queued; the trainer will pick it up.", id=run.id),
            "success",
        )
    else:
        flash(
            gettext("Training run %(id)s is already running; no new run was queued.", id=run.id),
            "info",
        )
    return redirect(url_for("admin.training_run", run_id=run.id))


@bp.get("/runs/<id:run_id>")
@role_required("admin")
def training_run(run_id: int):
    """One run: status and progress (polled while active), windows, candidate against champion."""
    _fail_stale()
    run = db.get_or_404(TrainingRun, run_id)
    challenger = releases.challenger()
    return render_template(
        "admin/run.html",
        run=run,
        metrics=METRICS,
        serving=releases.current(),
        challenger=challenger,
        evidence=runs_service.shadow_evidence() if run.version == challenger else None,
    )


@bp.get("/runs/<id:run_id>.json")
@role_required("admin")
def training_run_json(run_id: int):
    """A run's status and progress, for the page's polling script (so a run whose trainer died
    turns failed on the page within the stale limit)."""
    _fail_stale()
    run = db.get_or_404(TrainingRun, run_id)
    return jsonify(
        {
            "id": run.id,
            "status": run.status,
            "active": run.active,
            "progress": shown(run.progress),
            "cancel_requested": run.cancel_requested,
            "version": run.version,
            "promotion": run.promotion,
            "error": shown(run.error) or None,
            "created_at": _iso(run.created_at),
            "started_at": _iso(run.started_at),
            "heartbeat_at": _iso(run.heartbeat_at),
            "finished_at": _iso(run.finished_at),
        }
    )


def _fail_stale() -> None:
    runs_service.fail_stale(current_app.config["TRAINER_STALE_SECONDS"])


def _iso(value) -> str | None:
    return value.isoformat() if value else None


@bp.post("/runs/<id:run_id>/cancel")
@role_required("admin")
def cancel_run(run_id: int):
    """Cancel a queued run, or ask a running one to stop before it publishes."""
    try:
        run = runs_service.cancel(run_id, current_user.username)
    except runs_service.RunError as exc:
        flash(gettext("Cannot cancel: %(reason)s.", reason=exc), "error")
        return redirect(url_for("admin.training_runs"))
    if run.status == "cancelled":
        flash(gettext("Training run %(id)s is cancelled.", id=run.id), "success")
    else:
        flash(
            gettext(
                "Training run %(id)s will stop at its next step and publish nothing.", id=run.id
            ),
            "info",
        )
    return redirect(url_for("admin.training_run", run_id=run.id))


@bp.post("/models/<version>/promote")
@role_required("admin")
def promote_model(version: str):
    """Serve a registry version (loaded and verified first)."""
    try:
        runs_service.promote(version, current_user.username)
    except runs_service.RunError as exc:  # unknown, unreadable or not verifiable
        flash(
            gettext(
                "Cannot promote %(version)s: %(reason)s. The serving version is unchanged.",
                version=version,
                reason=exc,
            ),
            "error",
        )
    else:
        flash(
            gettext("%(version)s is now serving (every node within seconds).", version=version),
            "success",
        )
    return redirect(url_for("admin.training_runs"))


@bp.post("/models/<version>/shadow")
@role_required("admin")
def shadow_model(version: str):
    """Score every prediction with a version too, on every node, never deciding with it."""
    try:
        runs_service.start_shadow(version, current_user.username)
    except runs_service.RunError as exc:
        flash(
            gettext("Cannot shadow %(version)s: %(reason)s.", version=version, reason=exc), "error"
        )
        return redirect(url_for("admin.training_runs"))
    flash(
        gettext(
            "%(version)s is in shadow: every prediction is also scored by it.", version=version
        ),
        "success",
    )
    return _to_run_of(version)


@bp.post("/models/unshadow")
@role_required("admin")
def unshadow_model():
    """End the shadow."""
    try:
        version = runs_service.stop_shadow(current_user.username)
    except runs_service.RunError as exc:
        flash(gettext("Cannot stop the shadow: %(reason)s.", reason=exc), "error")
        return redirect(url_for("admin.training_runs"))
    flash(gettext("%(version)s is no longer in shadow.", version=version), "success")
    return _to_run_of(version)


def _to_run_of(version: str):
    run_id = runs_service.run_of(version)
    if run_id is None:
        return redirect(url_for("admin.training_runs"))
    return redirect(url_for("admin.training_run", run_id=run_id, _anchor="shadow"))


@bp.post("/models/rollback")
@role_required("admin")
def rollback_model():
    """Serve the version that served before the current one."""
    try:
        previous = runs_service.rollback(current_user.username)
    except runs_service.RunError as exc:
        flash(
            gettext("Cannot roll back: %(reason)s. The serving version is unchanged.", reason=exc),
            "error",
        )
    else:
        flash(gettext("Rolled back: %(version)s is now serving.", version=previous), "success")
    return redirect(url_for("admin.training_runs"))
