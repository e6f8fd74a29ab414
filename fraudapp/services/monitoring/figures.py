"""Monitoring figures from the labels known now: performance over time, score distributions,
volumes and the threshold curve.

Everything large is aggregated in SQL — confusion counts per score bin, scores as a 1,000-bin
histogram per day — and finished in numpy, so a dashboard over months of predictions reads a few
thousand rows, not one per prediction. Periods follow the transactions' own time (`tx_time`).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from flask import current_app
from sqlalchemy import case, func, select

from ...extensions import db
from ...ml.data import day_date, epoch_day
from ...ml.metrics import ap_from_histogram, rates
from ...models import DailyCount, MonitoringBin
from ..serving import serving_model, serving_threshold
from . import aggregates
from .drift import drift

BINS = aggregates.BINS


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
        return epoch_day(self.start)

    @property
    def last_day(self) -> int:
        """Epoch day number of the end."""
        return epoch_day(self.end)

    def bucket_start(self, bucket: int) -> dt.date:
        """The first day of a bucket number."""
        return day_date(bucket * 7 - 3 if self.granularity == "week" else bucket)


def history_range() -> tuple[dt.date, dt.date] | None:
    """The first and last transaction day up to today that has a stored prediction (from the
    aggregates); a prediction dated in the future does not stretch it."""
    aggregates.refresh()
    today = epoch_day(dt.datetime.now(dt.UTC).date())
    low, high = db.session.execute(
        select(func.min(MonitoringBin.day), func.max(MonitoringBin.day)).where(
            MonitoringBin.day <= today
        )
    ).one()
    if low is None:
        return None
    return day_date(low), day_date(high)


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
    frauds = np.bincount(
        index, weights=weights * (data["label"][labelled] == 1), minlength=groups * BINS
    ).reshape(groups, BINS)
    counts = np.bincount(index, weights=weights, minlength=groups * BINS).reshape(groups, BINS)
    return [None if math.isnan(ap) else float(ap) for ap in ap_from_histogram(frauds, counts)]


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
    curve = rates(tp, flagged - tp, total_frauds - tp)
    precision, recall, f1 = curve["precision"], curve["recall"], curve["f1"]
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


def window_figures(period: Period, threshold: float) -> dict:
    """The window's totals over its buckets."""
    return totals(performance(period, threshold), period, threshold)


def totals(rows: list[dict], period: Period, threshold: float) -> dict:
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


def default_period(days: int = 28) -> Period:
    """The last `days` of transactions with stored predictions up to today (or up to today)."""
    span = history_range()
    end = span[1] if span else dt.datetime.now(dt.UTC).date()
    start = max(span[0], end - dt.timedelta(days=days - 1)) if span else end
    return Period(start, end)


def dashboard(period: Period) -> dict:
    """Everything the monitoring page shows, for one period."""
    model = serving_model()
    threshold = serving_threshold(model.version, model.threshold)
    data = aggregates.bins(period.first_day, period.last_day, period.model_version)
    rows = performance(period, threshold, data)
    return {
        "model_version": model.version,
        "threshold": threshold,
        "trained_threshold": model.threshold,
        "performance": rows,
        "totals": totals(rows, period, threshold),
        "distribution": score_distribution(period, data=data),
        "volume": daily_volume(period),
        "drift": drift(model.meta, current_app.config["ALERT_WINDOW_DAYS"]),
    }


def model_versions() -> list[str]:
    """Model versions with stored predictions, newest first (from the aggregates)."""
    aggregates.refresh()
    versions = db.session.scalars(select(MonitoringBin.model_version).distinct()).all()
    return sorted(versions, key=lambda v: int(v[1:]) if v[1:].isdigit() else 0, reverse=True)
