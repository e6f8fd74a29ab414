"""Monitoring from the labels known now: performance over time, drift, alerts, thresholds.

Everything large is aggregated in SQL — confusion counts with SUM(CASE ...), scores as a 1,000-bin
histogram per period — and finished in numpy, so a dashboard over months of predictions reads a
few thousand rows, not one per prediction. Periods follow the transactions' own time (`tx_time`).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from flask import current_app
from sqlalchemy import case, func, select

from ..extensions import db
from ..ml import features
from ..models import DailyCount, ModelSetting, MonitoringBin, MonitoringSnapshot, Prediction
from . import aggregates, audit, webhooks

BINS = aggregates.BINS
PSI_BANDS = ((0.1, "stable"), (0.25, "watch"), (math.inf, "act"))


@dataclass(frozen=True)
class Period:
    """A stretch of transaction days, cut into days or weeks, optionally one model version."""

    start: dt.date
    end: dt.date  # inclusive
    granularity: str = "day"  # or "week"
    model_version: str | None = None

    @property
    def first_day(self) -> int:
        """Epoch day number of the start."""
        return (self.start - dt.date(1970, 1, 1)).days

    @property
    def last_day(self) -> int:
        """Epoch day number of the end."""
        return (self.end - dt.date(1970, 1, 1)).days

    def bucket_start(self, bucket: int) -> dt.date:
        """The first day of a bucket number."""
        days = bucket * 7 - 3 if self.granularity == "week" else bucket
        return dt.date(1970, 1, 1) + dt.timedelta(days=int(days))


def history_range() -> tuple[dt.date, dt.date] | None:
    """The first and last transaction day that has a stored prediction (from the aggregates)."""
    aggregates.refresh()
    low, high = db.session.execute(
        select(func.min(MonitoringBin.day), func.max(MonitoringBin.day))
    ).one()
    if low is None:
        return None
    return (
        dt.date(1970, 1, 1) + dt.timedelta(days=low),
        dt.date(1970, 1, 1) + dt.timedelta(days=high),
    )


def serving_threshold(version: str, trained_threshold: float) -> float:
    """The admin's threshold for a version if one was set, else the one chosen in training."""
    value = db.session.scalar(
        select(ModelSetting.threshold).where(ModelSetting.model_version == version)
    )
    return trained_threshold if value is None else value


def set_threshold(version: str, threshold: float, user: str) -> None:
    """Set the serving threshold of a version; audited; every worker uses it within a second."""
    if not 0.0 < threshold < 1.0:
        raise ValueError("the threshold must be between 0 and 1")
    setting = db.session.get(ModelSetting, version)
    old = setting.threshold if setting else None
    if setting is None:
        setting = ModelSetting(model_version=version, threshold=threshold, updated_by=user)
        db.session.add(setting)
    setting.threshold, setting.updated_by = threshold, user
    audit.record("threshold.changed", target=version, details={"from": old, "to": threshold})
    db.session.commit()


def performance(period: Period, threshold: float, data: dict | None = None) -> list[dict]:
    """Per period bucket and model version: volume, labels and metrics at the threshold.

    Vectorised over the daily histogram rows: one bincount per figure, grouped by
    (bucket, version), instead of a pass per bucket.
    """
    if data is None:
        data = aggregates.bins(period.first_day, period.last_day, period.model_version)
    bucket = _buckets(period, data["day"])
    keys, group = (
        np.unique(
            np.array([bucket.astype(str), data["version"].astype(str)]).T,
            axis=0,
            return_inverse=True,
        )
        if len(bucket)
        else (np.empty((0, 2)), np.empty(0, int))
    )
    group = group.ravel()
    flagged = data["bin"] >= math.ceil(threshold * BINS - 1e-9)
    cell = group * 6 + (data["label"] + 1) * 2 + flagged  # label -1/0/1, passed/flagged
    counts = np.bincount(cell, weights=data["count"], minlength=len(keys) * 6).reshape(-1, 3, 2)
    aps = _average_precisions(group, data, len(keys))
    cards = _card_precision(period)
    rows = []
    for g, (bucket_key, version) in enumerate(keys):
        key = (int(bucket_key), str(version))
        rows.append(_figures(period, key, counts[g], aps[g], cards.get(key)))
    return sorted(rows, key=lambda r: (r["period"], r["model_version"]))


def _buckets(period: Period, days: np.ndarray) -> np.ndarray:
    return (days + 3) // 7 if period.granularity == "week" else days


def _figures(period: Period, key: tuple, counts: np.ndarray, ap, card_precision) -> dict:
    """One row of the performance table from its [label][flagged] counts."""
    (_, _), (tn, fp), (fn, tp) = counts.astype(int).tolist()
    predictions = int(counts.sum())
    labelled = tp + fp + fn + tn
    return {
        "period": period.bucket_start(key[0]).isoformat(),
        "model_version": key[1],
        "predictions": predictions,
        "labelled": labelled,
        "coverage": labelled / predictions if predictions else None,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        **rates(tp, fp, fn),
        "ap": ap,
        "card_precision": card_precision,
    }


def _average_precisions(group: np.ndarray, data: dict, groups: int) -> list[float | None]:
    """AP per group from its labelled score histogram, bins ranked high to low."""
    labelled = data["label"] >= 0
    index = group[labelled] * BINS + (BINS - 1 - data["bin"][labelled])  # high scores first
    weights = data["count"][labelled]
    frauds = (
        np.bincount(
            index, weights=weights * (data["label"][labelled] == 1), minlength=groups * BINS
        )
        .astype(float)
        .reshape(groups, BINS)
    )
    counts = (
        np.bincount(index, weights=weights, minlength=groups * BINS)
        .astype(float)
        .reshape(groups, BINS)
    )
    cum_frauds, cum_counts = np.cumsum(frauds, axis=1), np.cumsum(counts, axis=1)
    precision = np.divide(
        cum_frauds, cum_counts, out=np.zeros_like(cum_frauds), where=cum_counts > 0
    )
    totals = frauds.sum(axis=1)
    ap = np.divide((precision * frauds).sum(axis=1), totals, out=np.zeros(groups), where=totals > 0)
    return [float(a) if t > 0 else None for a, t in zip(ap, totals, strict=True)]


def rates(tp: int, fp: int, fn: int) -> dict:
    """Precision, recall and F1 of counts (None where undefined)."""
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"precision": precision, "recall": recall, "f1": f1}


def _labelled_histogram(data: dict) -> tuple[np.ndarray, np.ndarray]:
    """Frauds and labelled counts per score bin."""
    labelled = data["label"] >= 0
    frauds = np.bincount(
        data["bin"][labelled],
        weights=data["count"][labelled] * (data["label"][labelled] == 1),
        minlength=BINS,
    )
    counts = np.bincount(data["bin"][labelled], weights=data["count"][labelled], minlength=BINS)
    return frauds[:BINS], counts[:BINS]


def ap_from_bins(rows) -> float | None:
    """Average precision from (bin, frauds, count) rows, bins ranked high to low (ties per bin)."""
    rows = sorted(rows, key=lambda r: -r[0])
    frauds = np.array([r[1] for r in rows], dtype=float)
    counts = np.array([r[2] for r in rows], dtype=float)
    if frauds.sum() == 0:
        return None
    precision = np.cumsum(frauds) / np.cumsum(counts)
    return float(np.sum(precision * frauds) / frauds.sum())


def _card_precision(period: Period) -> dict:
    """Per bucket and version: the mean over its days of the share of frauds among the day's k
    customers scored highest (each by their best score that day)."""
    per_bucket: dict[tuple, list] = {}
    for day, version, hits, k in aggregates.card_days(
        period.first_day, period.last_day, period.model_version
    ):
        bucket = int(_buckets(period, np.array([day]))[0])
        per_bucket.setdefault((bucket, version), []).append(hits / k)
    return {key: float(np.mean(values)) for key, values in per_bucket.items()}


def score_distribution(period: Period, bins: int = 20, data: dict | None = None) -> dict:
    """Counts of scores in `bins` equal bins, by label (fraud, genuine, unlabelled)."""
    if data is None:
        data = aggregates.bins(period.first_day, period.last_day, period.model_version)
    coarse = data["bin"] * bins // BINS
    counts = {}
    for name, code in (("fraud", 1), ("genuine", 0), ("unlabelled", -1)):
        mask = data["label"] == code
        counts[name] = (
            np.bincount(coarse[mask], weights=data["count"][mask], minlength=bins)[:bins]
            .astype(int)
            .tolist()
        )
    return {"edges": [i / bins for i in range(bins + 1)], **counts}


def daily_volume(period: Period) -> list[dict]:
    """Every prediction made per day (consented or not), from the anonymous counts."""
    rows = db.session.execute(
        select(
            DailyCount.day,
            func.sum(DailyCount.count),
            func.sum(case((DailyCount.consented.is_(True), DailyCount.count), else_=0)),
        )
        .where(DailyCount.day >= period.start, DailyCount.day <= period.end)
        .group_by(DailyCount.day)
        .order_by(DailyCount.day)
    ).all()
    return [
        {"day": str(day), "scored": int(total), "stored": int(stored)}
        for day, total, stored in rows
    ]


def threshold_curve(period: Period, target_precision: float = 0.8) -> dict:
    """Precision, recall and F1 against the threshold on the period's labelled predictions,
    with the F1-optimal threshold and the lowest one reaching the target precision."""
    frauds, counts = _labelled_histogram(
        aggregates.bins(period.first_day, period.last_day, period.model_version)
    )
    tp = np.cumsum(frauds[::-1])[::-1]  # frauds flagged at threshold bin / BINS
    flagged = np.cumsum(counts[::-1])[::-1]
    total_frauds = frauds.sum()
    thresholds = np.arange(BINS) / BINS
    precision = np.divide(tp, flagged, out=np.zeros(BINS), where=flagged > 0)
    recall = tp / total_frauds if total_frauds else np.zeros(BINS)
    f1 = np.divide(
        2 * precision * recall,
        precision + recall,
        out=np.zeros(BINS),
        where=(precision + recall) > 0,
    )
    step = BINS // 100
    reaching = np.flatnonzero((precision >= target_precision) & (flagged > 0))
    best = int(np.argmax(f1))
    return {
        "labelled": int(counts.sum()),
        "frauds": int(total_frauds),
        "thresholds": thresholds[::step].tolist(),
        "precision": precision[::step].tolist(),
        "recall": recall[::step].tolist(),
        "f1": f1[::step].tolist(),
        "best_f1": {"threshold": float(thresholds[best]), "f1": float(f1[best])}
        if total_frauds
        else None,
        "target_precision": target_precision,
        "precision_target": {
            "threshold": float(thresholds[reaching[0]]),
            "recall": float(recall[reaching[0]]),
        }
        if len(reaching)
        else None,
    }


def psi(reference: dict, values: np.ndarray) -> float | None:
    """Population stability index of values against a reference {edges, shares}."""
    if len(values) == 0:
        return None
    edges = np.asarray(reference["edges"], dtype=float)
    expected = np.asarray(reference["shares"], dtype=float)
    inner = edges[1:-1]
    observed = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(expected))[
        : len(expected)
    ] / len(values)
    expected, observed = np.clip(expected, 1e-4, None), np.clip(observed, 1e-4, None)
    return float(np.sum((observed - expected) * np.log(observed / expected)))


def band(value: float | None) -> str | None:
    """stable (< 0.1), watch (0.1-0.25) or act (> 0.25)."""
    if value is None:
        return None
    return next(name for limit, name in PSI_BANDS if value < limit)


def drift(meta: dict, days: int) -> list[dict]:
    """PSI per feature and for the score: the version's recent predictions (the latest
    DRIFT_SAMPLE of the last `days`) against the reference distributions saved in training."""
    reference = meta.get("reference") or {}
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    rows = db.session.execute(
        select(Prediction.features, Prediction.score)
        .where(Prediction.model_version == meta["version"], Prediction.created_at >= since)
        .order_by(Prediction.created_at.desc())
        .limit(current_app.config["DRIFT_SAMPLE"])
    ).all()
    columns = {
        name: np.array([r[0].get(name, np.nan) for r in rows], dtype=float)
        for name in features.FEATURES
    }
    columns["score"] = np.array([r[1] for r in rows], dtype=float)
    result = []
    for name, values in columns.items():
        if name in reference:
            values = values[~np.isnan(values)]
            enough = len(values) >= current_app.config["DRIFT_MIN_SAMPLES"]
            value = psi(reference[name], values) if enough else None
            result.append({"feature": name, "psi": value, "band": band(value), "n": len(values)})
    return result


def latest_snapshots(limit: int = 20) -> list[MonitoringSnapshot]:
    """The most recent monitoring snapshots."""
    return list(
        db.session.scalars(
            select(MonitoringSnapshot).order_by(MonitoringSnapshot.id.desc()).limit(limit)
        )
    )


def check(as_of: dt.date | None = None) -> MonitoringSnapshot:
    """Compute the figures of the last window, evaluate the alert rules, store a snapshot, and
    post newly raised alerts to the configured webhooks; commits."""
    from .scoring import serving_model

    config = current_app.config
    model = serving_model()
    threshold = serving_threshold(model.version, model.threshold)
    end = as_of or dt.datetime.now(dt.UTC).date()
    period = Period(
        end - dt.timedelta(days=config["ALERT_WINDOW_DAYS"] - 1), end, "week", model.version
    )
    figures = _window_figures(period, threshold)
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
        webhooks.deliver([delivery.id for delivery in deliveries])
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
    if alerts and config["RETRAIN_ON_ALERT"]:
        from .runs import request_run

        request_run("alert", "monitor")
    return snapshot


def _window_figures(period: Period, threshold: float) -> dict:
    """The window's totals over its buckets."""
    return _window_figures_from_rows(performance(period, threshold), period, threshold)


def _window_figures_from_rows(rows: list[dict], period: Period, threshold: float) -> dict:
    """Totals of per-bucket rows: counts summed, rates recomputed."""
    totals = {
        key: sum(r[key] for r in rows)
        for key in ("predictions", "labelled", "tp", "fp", "fn", "tn")
    }
    return {
        **totals,
        **rates(totals["tp"], totals["fp"], totals["fn"]),
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "threshold": threshold,
        "coverage": totals["labelled"] / totals["predictions"] if totals["predictions"] else None,
    }


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
                "message": f"F1 {figures['f1']:.3f} over the last {days} days is below "
                f"{config['ALERT_F1_BELOW']} ({figures['labelled']} labels)",
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
                "message": f"{worst['feature']} drifted: PSI {worst['psi']:.3f} > "
                f"{config['ALERT_PSI_ABOVE']}",
            }
        )
    coverage = figures["coverage"]
    if coverage is not None and coverage < config["ALERT_COVERAGE_BELOW"]:
        alerts.append(
            {
                "rule": "coverage",
                "value": coverage,
                "limit": config["ALERT_COVERAGE_BELOW"],
                "message": f"only {coverage:.1%} of stored predictions are labelled",
            }
        )
    for alert in alerts:
        alert["suggestion"] = "consider retraining the model on the recent labels"
    return alerts


def _queue_alerts(snapshot: MonitoringSnapshot, config) -> list:
    """Queue the signed alert webhooks (retried like every delivery); none without a secret."""
    if not config.get("WEBHOOK_SECRET"):
        return []
    payload = {
        "event": "monitoring.alert",
        "model_version": snapshot.model_version,
        "alerts": snapshot.alerts,
        "sent_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    return [webhooks.queue(url, payload) for url in config["ALERT_WEBHOOK_URLS"]]


def default_period(days: int = 28) -> Period:
    """The last `days` of transactions with stored predictions (or up to today)."""
    span = history_range()
    end = span[1] if span else dt.datetime.now(dt.UTC).date()
    start = max(span[0], end - dt.timedelta(days=days - 1)) if span else end
    return Period(start, end)


def dashboard(period: Period) -> dict:
    """Everything the monitoring page shows, for one period."""
    from .scoring import serving_model

    model = serving_model()
    threshold = serving_threshold(model.version, model.threshold)
    data = aggregates.bins(period.first_day, period.last_day, period.model_version)
    rows = performance(period, threshold, data)
    return {
        "model_version": model.version,
        "threshold": threshold,
        "trained_threshold": model.threshold,
        "performance": rows,
        "totals": _window_figures_from_rows(rows, period, threshold),
        "distribution": score_distribution(period, data=data),
        "volume": daily_volume(period),
        "drift": drift(model.meta, current_app.config["ALERT_WINDOW_DAYS"]),
        "snapshots": latest_snapshots(),
    }


def model_versions() -> list[str]:
    """Model versions with stored predictions, newest first (from the aggregates)."""
    aggregates.refresh()
    versions = db.session.scalars(select(MonitoringBin.model_version).distinct()).all()
    return sorted(versions, key=lambda v: int(v[1:]) if v[1:].isdigit() else 0, reverse=True)
