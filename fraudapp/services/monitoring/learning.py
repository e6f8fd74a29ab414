"""The learning panel: did each promotion improve on the model it replaced?

Per promoted version, its first served week — the labelled stored predictions it decided in its
first 7 transaction days — against the version it replaced, scored on the very same transactions:
the stored feature snapshots are rescored by the replaced version's booster (in the model's own
feature order). `flask monitor` writes the rows (`refresh`); the dashboard only reads them.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from sqlalchemy import func, select

from ...extensions import db
from ...ml import columns
from ...ml.data import day_date, group_codes
from ...ml.features import DAY
from ...models import LearningRow, ModelRelease, Prediction, Transaction
from ..serving import SERVING_ACTIONS, load_version
from .shadow import figures, trained_threshold

FIRST_WEEK_DAYS = 7
LATEST_PROMOTIONS = 20  # the panel covers this many of the latest promotions


def promotions() -> list[tuple[str, str, dt.datetime]]:
    """(version, the version it replaced, when) for each version's first promotion that
    replaced another one, oldest first (the latest LATEST_PROMOTIONS)."""
    rows = db.session.execute(
        select(ModelRelease.version, ModelRelease.action, ModelRelease.created_at)
        .where(ModelRelease.action.in_(SERVING_ACTIONS))
        .order_by(ModelRelease.id)
    ).all()
    serving, seen, found = None, set(), []
    for version, action, created_at in rows:
        if action == "promote" and serving not in (None, version) and version not in seen:
            seen.add(version)
            found.append((version, serving, created_at))
        serving = version
    return found[-LATEST_PROMOTIONS:]


def first_week(version: str) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A version's labelled stored predictions of its first FIRST_WEEK_DAYS transaction days:
    feature snapshots, its scores, labels, days and customers."""
    first = db.session.scalar(
        select(func.min(Transaction.tx_time))
        .join(Prediction, Prediction.transaction_id == Transaction.id)
        .where(Prediction.model_version == version)
    )
    if first is None:
        return [], *(np.empty(0) for _ in range(4))
    start = first // DAY * DAY
    rows = db.session.execute(
        select(
            Prediction.features,
            Prediction.score,
            Transaction.fraud,
            Transaction.tx_time,
            Transaction.customer_id,
        )
        .join(Transaction, Transaction.id == Prediction.transaction_id)
        .where(
            Prediction.model_version == version,
            Transaction.fraud.is_not(None),
            Transaction.tx_time >= start,
            Transaction.tx_time < start + FIRST_WEEK_DAYS * DAY,
        )
    ).all()
    snapshots = [row[0] for row in rows]
    scores = np.array([row[1] for row in rows], dtype=np.float64)
    labels = np.array([int(row[2]) for row in rows], dtype=np.int64)
    days = np.array([row[3] // DAY for row in rows], dtype=np.int64)
    customers = group_codes([row[4] for row in rows])
    return snapshots, scores, labels, days, customers


def evaluate(version: str, replaced: str) -> dict:
    """The first-week figures of a version and of the version it replaced, on the same labelled
    transactions (an "error" instead when the replaced version cannot be loaded here)."""
    snapshots, scores, labels, days, customers = first_week(version)
    base = {
        "labels": int(len(labels)),
        "frauds": int(labels.sum()),
        "first_day": day_date(int(days.min())).isoformat() if len(days) else None,
    }
    if not len(labels):
        return base
    model = load_version(replaced)
    if model is None:
        return base | {"error": f"{replaced} cannot be loaded here to rescore the week"}
    theirs = model.score_own(columns.from_dicts(snapshots, model.feature_names))
    return base | {
        "version": figures(scores, labels, days, customers, trained_threshold(version)),
        "replaced": figures(theirs, labels, days, customers, trained_threshold(replaced)),
    }


def refresh() -> list[LearningRow]:
    """Recompute the panel's rows (labels keep arriving); the rows, newest first. Commits."""
    for version, replaced, promoted_at in promotions():
        row = db.session.get(LearningRow, version)
        if row is None:
            row = LearningRow(version=version, promoted_at=promoted_at, figures={})
            db.session.add(row)
        row.replaced, row.promoted_at = replaced, promoted_at
        row.figures = evaluate(version, replaced)
    db.session.commit()
    return panel()


def panel() -> list[LearningRow]:
    """The stored rows of the learning panel, the latest promotion first."""
    return list(db.session.scalars(select(LearningRow).order_by(LearningRow.promoted_at.desc())))
