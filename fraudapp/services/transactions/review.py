"""The analysts' review queue and the label coverage figures."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select

from ...extensions import db
from ...ml.explain import explain_rows
from ...models import Label, Prediction, Transaction
from ..serving import load_version
from .limits import utc_midnight

STATUSES = ("unlabelled", "feedback", "analyst", "all")


@dataclass(frozen=True)
class Filters:
    """What the queue shows; None means no restriction."""

    status: str = "unlabelled"
    decision: str | None = None  # "fraud" | "genuine"
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    score_min: float | None = None
    score_max: float | None = None
    model_version: str | None = None


@dataclass
class Page:
    """One page of the queue."""

    items: list[Prediction]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """Number of pages (at least 1)."""
        return max(1, math.ceil(self.total / self.per_page))


def _conditions(filters: Filters) -> list:
    status = {
        "unlabelled": Transaction.label_source.is_(None),
        "feedback": Transaction.label_source == "feedback",
        "analyst": Transaction.label_source == "analyst",
    }
    conditions = [status[filters.status]] if filters.status in status else []
    if filters.decision:
        conditions.append(Prediction.is_fraud.is_(filters.decision == "fraud"))
    if filters.date_from:
        conditions.append(Prediction.created_at >= _utc_midnight(filters.date_from))
    if filters.date_to:
        conditions.append(Prediction.created_at < _utc_midnight(filters.date_to, 1))
    if filters.score_min is not None:
        conditions.append(Prediction.score >= filters.score_min)
    if filters.score_max is not None:
        conditions.append(Prediction.score <= filters.score_max)
    if filters.model_version:
        conditions.append(Prediction.model_version == filters.model_version)
    return conditions


def _utc_midnight(day: dt.date, plus_days: int = 0) -> dt.datetime:
    return utc_midnight(day, plus_days)  # 9999-12-31 plus a day is the calendar's end


def queue(filters: Filters, page: int = 1, per_page: int = 25) -> Page:
    """Stored predictions matching the filters, most suspicious first."""
    base = select(Prediction).join(Prediction.transaction).where(*_conditions(filters))
    total = db.session.scalar(select(func.count()).select_from(base.subquery()))
    page = min(max(page, 1), max(1, math.ceil(total / per_page)))
    items = db.session.scalars(
        base.order_by(Prediction.score.desc(), Prediction.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return Page(list(items), total, page, per_page)


def explanations(
    predictions: list[Prediction], top: int = 3
) -> dict[int, list[tuple[str, float, bool]]]:
    """The reasons per prediction — (feature, value, raised the risk), for the page to word — from
    its stored features and its own model version."""
    reasons = {}
    for prediction in predictions:
        model = load_version(prediction.model_version)
        if model is None:
            reasons[prediction.id] = []
            continue
        row = model.full_row(prediction.features)
        reasons[prediction.id] = [
            (r["feature"], r["value"], r["contribution"] > 0)
            for r in explain_rows(model, row[None, :], top)[0]
        ]
    return reasons


def coverage(days: int = 30) -> list[dict]:
    """Per day and model version: stored predictions, labelled ones by label source, and the median
    delay from prediction to the first feedback or analyst label."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    day = func.date(Prediction.created_at).label("day")
    rows = db.session.execute(
        select(
            day,
            Prediction.model_version,
            Prediction.created_at,
            Transaction.label_source,
            func.min(Label.created_at),
        )
        .join(Prediction.transaction)
        .outerjoin(Label, (Label.transaction_id == Transaction.id) & (Label.source != "import"))
        .where(Prediction.created_at >= since)
        .group_by(
            Prediction.id,
            day,
            Prediction.model_version,
            Prediction.created_at,
            Transaction.label_source,
        )
    ).all()
    return _summarise(rows)


def _summarise(rows) -> list[dict]:
    groups: dict[tuple, dict] = {}
    for day, version, created, source, first_label in rows:
        group = groups.setdefault(
            (str(day), version),
            {
                "day": str(day),
                "model_version": version,
                "predictions": 0,
                "labelled": 0,
                "import": 0,
                "feedback": 0,
                "analyst": 0,
                "delays": [],
            },
        )
        group["predictions"] += 1
        if source is not None:
            group["labelled"] += 1
            group[source] += 1
        if first_label is not None:
            group["delays"].append((first_label - created).total_seconds() / 3600)
    result = []
    for key in sorted(groups, reverse=True):
        group = groups[key]
        delays = group.pop("delays")
        group["median_delay_hours"] = float(np.median(delays)) if delays else None
        group["coverage"] = group["labelled"] / group["predictions"]
        result.append(group)
    return result
