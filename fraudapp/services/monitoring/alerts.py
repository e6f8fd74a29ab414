"""Alerts: `flask monitor` computes the figures of the last window, evaluates the alert rules,
keeps a snapshot and posts newly raised alerts as signed webhooks."""

from __future__ import annotations

import datetime as dt

from flask import current_app
from sqlalchemy import select

from ...extensions import db
from ...i18n import Message
from ...models import MonitoringSnapshot
from ..distribution import outbox
from ..serving import serving_model, serving_threshold
from .drift import drift
from .figures import Period, window_figures


def latest_snapshots(limit: int = 20) -> list[MonitoringSnapshot]:
    """The most recent monitoring snapshots."""
    return list(
        db.session.scalars(
            select(MonitoringSnapshot).order_by(MonitoringSnapshot.id.desc()).limit(limit)
        )
    )


SUGGESTION = Message("consider retraining the model on the recent labels")


def check(as_of: dt.date | None = None) -> MonitoringSnapshot:
    """Compute the figures of the last window, evaluate the alert rules, store a snapshot, and
    post newly raised alerts to the configured webhooks; commits."""
    config = current_app.config
    model = serving_model()
    threshold = serving_threshold(model.version, model.threshold)
    end = as_of or dt.datetime.now(dt.UTC).date()
    period = Period(
        end - dt.timedelta(days=config["ALERT_WINDOW_DAYS"] - 1), end, "week", model.version
    )
    figures = window_figures(period, threshold)
    figures["drift"] = drift(model.meta, config["ALERT_WINDOW_DAYS"])
    alerts = evaluate_rules(figures, config)
    snapshot = MonitoringSnapshot(model_version=model.version, figures=figures, alerts=alerts)
    previous = latest_snapshots(1)
    raised = {a["rule"] for a in alerts} - {
        a["rule"] for a in (previous[0].alerts if previous else [])
    }
    db.session.add(snapshot)
    deliveries = _queue_alerts(snapshot, config) if raised else []
    db.session.commit()
    if deliveries:
        outbox.deliver([delivery.id for delivery in deliveries])
        snapshot.deliveries = [
            {
                "url": d.url,
                "status": d.last_status,
                "error": d.last_error,
                "ms": d.last_ms,
                "delivery": d.status,
            }
            for d in deliveries
        ]
        db.session.commit()
    return snapshot


def evaluate_rules(figures: dict, config) -> list[dict]:
    """The alerts the figures raise under the configured rules."""
    alerts = []
    days = config["ALERT_WINDOW_DAYS"]
    if (
        figures["f1"] is not None
        and figures["labelled"] >= config["ALERT_MIN_LABELS"]
        and figures["f1"] < config["ALERT_F1_BELOW"]
    ):
        alerts.append(
            {
                "rule": "f1",
                "value": figures["f1"],
                "limit": config["ALERT_F1_BELOW"],
                "message": Message(
                    "F1 %(f1)s over the last %(days)s days is below %(limit)s (%(labels)s labels)",
                    f1=round(figures["f1"], 3),
                    days=days,
                    limit=float(config["ALERT_F1_BELOW"]),
                    labels=figures["labelled"],
                ),
            }
        )
    worst = max(
        (d for d in figures.get("drift", []) if d["psi"] is not None),
        key=lambda d: d["psi"],
        default=None,
    )
    if worst and worst["psi"] > config["ALERT_PSI_ABOVE"]:
        alerts.append(
            {
                "rule": "psi",
                "value": worst["psi"],
                "limit": config["ALERT_PSI_ABOVE"],
                "message": Message(
                    "%(feature)s drifted: PSI %(psi)s > %(limit)s",
                    feature=worst["feature"],
                    psi=round(worst["psi"], 3),
                    limit=float(config["ALERT_PSI_ABOVE"]),
                ),
            }
        )
    coverage = figures["coverage"]
    if coverage is not None and coverage < config["ALERT_COVERAGE_BELOW"]:
        alerts.append(
            {
                "rule": "coverage",
                "value": coverage,
                "limit": config["ALERT_COVERAGE_BELOW"],
                "message": Message(
                    "only %(percent)s%% of stored predictions are labelled",
                    percent=round(100 * coverage, 1),
                ),
            }
        )
    for alert in alerts:
        message = alert["message"]
        alert["message"], alert["wording"] = message.english(), message.stored()
        alert["suggestion"] = SUGGESTION.stored()
    return alerts


def for_machines(alerts: list[dict]) -> list[dict]:
    """The alerts as the webhooks and `flask monitor --json` give them: English texts, without
    the stored wording the dashboard shows in its reader's language."""
    return [{k: v for k, v in alert.items() if k != "wording"} for alert in alerts]


def _queue_alerts(snapshot: MonitoringSnapshot, config) -> list:
    """Queue the signed alert webhooks (retried like every delivery); none without a secret."""
    if not config.get("WEBHOOK_SECRET"):
        return []
    payload = {
        "event": "monitoring.alert",
        "model_version": snapshot.model_version,
        "alerts": for_machines(snapshot.alerts),
        "sent_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    return [outbox.queue(url, payload) for url in config["ALERT_WEBHOOK_URLS"]]
