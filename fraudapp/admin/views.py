"""Admin views: thin wrappers around the monitoring and audit services."""

from __future__ import annotations

import csv
import io

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user

from ..auth.decorators import role_required
from ..feedback.forms import choices
from ..services import audit, serving
from ..services.monitoring import alerts, figures, learning
from ..services.training import runs
from ..services.transactions.limits import page_number, utc_midnight
from . import bp
from .forms import AuditFilterForm, PeriodForm, ThresholdForm


def _period_form() -> tuple[PeriodForm, figures.Period]:
    form = PeriodForm(request.args)
    form.model_version.choices = choices(["", *figures.model_versions()])
    form.validate()
    return form, form.period(figures.default_period())


@bp.get("/")
@role_required("admin")
def dashboard():
    """Metrics over time, drift, alerts and snapshots."""
    form, period = _period_form()
    return render_template(
        "admin/dashboard.html",
        form=form,
        period=period,
        data=figures.dashboard(period),
        snapshots=alerts.latest_snapshots(),
        shadowing=runs.shadow_evidence(),
        shadow_run=runs.shadow_run_id(),
        learning=learning.panel(),
    )


@bp.route("/threshold", methods=["GET", "POST"])
@role_required("admin")
def threshold():
    """Precision, recall and F1 against the threshold; set the serving threshold."""
    model = serving.serving_model()
    setting = ThresholdForm()
    if setting.validate_on_submit():
        serving.set_threshold(model.version, float(setting.threshold.data), current_user.username)
        flash(
            gettext(
                "Serving threshold of %(version)s set to %(threshold)s.",
                version=model.version,
                threshold=setting.threshold.data,
            ),
            "success",
        )
        return redirect(url_for("admin.threshold", **request.args))
    form, period = _period_form()
    target = float(form.target_precision.data or 0.8)
    current = serving.serving_threshold(model.version, model.threshold)  # not the cache
    if not setting.threshold.data:
        setting.threshold.data = round(current, 3)
    return render_template(
        "admin/threshold.html",
        form=form,
        setting=setting,
        model=model,
        current=current,
        curve=figures.threshold_curve(period, target),
        period=period,
    ), 400 if setting.errors else 200


@bp.get("/audit")
@role_required("admin")
def audit_log():
    """The audit log, newest first, filtered."""
    form = AuditFilterForm(request.args)
    form.action.choices = choices(["", *audit.actions()])
    form.validate()
    page = request.args.get("page", 1, type=page_number)
    events, total = audit.search(**_audit_filters(form), page=page)
    return render_template("admin/audit.html", form=form, events=events, total=total, page=page)


def _audit_filters(form: AuditFilterForm) -> dict:
    def day(field, plus=0):
        if field.data and not field.errors:
            return utc_midnight(field.data, plus)
        return None

    return {
        "actor": form.actor.data if form.actor.data and not form.actor.errors else None,
        "action": form.action.data or None,
        "since": day(form.since),
        "until": day(form.until, 1),
    }


@bp.get("/export/<name>.csv")
@role_required("admin")
def export(name: str):
    """Every table of the admin pages as CSV, for the same filters."""
    if name == "audit":
        form = AuditFilterForm(request.args)
        form.action.choices = choices(["", *audit.actions()])
        form.validate()
        events, _ = audit.search(**_audit_filters(form), per_page=100_000)
        rows = [
            {
                "time": e.created_at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "ip": e.ip,
                "details": e.details,
            }
            for e in events
        ]
    else:
        rows = _monitoring_rows(name)
    return _csv(rows, f"fraudapp-{name}.csv")


def _monitoring_rows(name: str) -> list[dict]:
    if name not in ("threshold", "distribution", "snapshots", "performance", "volume", "drift"):
        abort(404)
    _, period = _period_form()
    if name == "threshold":
        curve = figures.threshold_curve(period)
        return [
            dict(zip(("threshold", "precision", "recall", "f1"), values, strict=True))
            for values in zip(
                curve["thresholds"], curve["precision"], curve["recall"], curve["f1"], strict=True
            )
        ]
    if name == "snapshots":
        return [
            {
                "time": s.created_at.isoformat(),
                "model_version": s.model_version,
                **{
                    k: s.figures.get(k)
                    for k in ("predictions", "labelled", "precision", "recall", "f1", "coverage")
                },
                "alerts": "; ".join(a["message"] for a in s.alerts),
            }
            for s in alerts.latest_snapshots()
        ]
    data = figures.dashboard(period)
    if name == "distribution":
        dist = data["distribution"]
        return [
            {
                "from": dist["edges"][i],
                "to": dist["edges"][i + 1],
                "fraud": dist["fraud"][i],
                "genuine": dist["genuine"][i],
                "unlabelled": dist["unlabelled"][i],
            }
            for i in range(len(dist["fraud"]))
        ]
    return data[name]


def _csv(rows: list[dict], filename: str) -> Response:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename={filename}"},
    )


def _cell(value):
    """A text cell a spreadsheet would run as a formula gets a leading quote (OWASP: CSV
    injection)."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value
