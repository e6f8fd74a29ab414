"""Monitoring aggregates maintained per transaction day, so the dashboard reads a few thousand rows
however long the history.

Writers mark the days they touch as dirty (`transactions.changes`); before reading, `refresh()`
X
model version, 1,000 bins, label known now) and card-precision hits in SQL. A change that commits
while a refresh runs marks its day dirty again, so it is picked up by the next read.
"""

from __future__ import annotations

import numpy as np
from flask import current_app
from sqlalchemy import Integer, and_, case, cast, delete, func, insert, literal, select, text

from ...extensions import db
from ...ml.features import DAY
from ...models import DirtyDay, MonitoringBin, MonitoringDay, Prediction, Transaction

BINS = 1000
CHUNK_DAYS = 64
_LOCK_KEY = 7_311_001  # PostgreSQL advisory lock: one refresher at a time


def refresh() -> int:
    """Recompute the aggregates of every dirty day; how many days; commits."""
    if not db.session.scalar(select(DirtyDay.day).limit(1)):
        return 0
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    days = sorted(db.session.scalars(select(DirtyDay.day)).all())
    for start in range(0, len(days), CHUNK_DAYS):
        _recompute(days[start : start + CHUNK_DAYS])
    db.session.commit()
    return len(days)


def _recompute(days: list[int]) -> None:
    db.session.execute(delete(DirtyDay).where(DirtyDay.day.in_(days)))
    db.session.execute(delete(MonitoringBin).where(MonitoringBin.day.in_(days)))
    db.session.execute(delete(MonitoringDay).where(MonitoringDay.day.in_(days)))
    in_days = and_(
        Transaction.tx_time >= days[0] * DAY,
        Transaction.tx_time < (days[-1] + 1) * DAY,
        Transaction.day.in_(days),
    )
    day = Transaction.day.label("day")
    label = case((Transaction.fraud.is_(True), 1), (Transaction.fraud.is_(False), 0), else_=-1)
    score_bin = _score_bin()
    db.session.execute(
        insert(MonitoringBin).from_select(
            ["day", "model_version", "bin", "label", "count"],
            select(day, Prediction.model_version, score_bin, label, func.count())
            .select_from(Prediction)
            .join(Prediction.transaction)
            .where(in_days)
            .group_by(day, Prediction.model_version, score_bin, label),
        )
    )
    _recompute_cards(in_days)


def _score_bin():
    """floor(score · BINS), at most BINS − 1 (SQLite's CAST truncates, PostgreSQL's rounds)."""
    scaled = Prediction.score * (BINS - 1e-9)
    if db.session.get_bind().dialect.name == "postgresql":
        scaled = func.floor(scaled)
    return cast(scaled, Integer)


def _recompute_cards(in_days) -> None:
    """Per day and version: frauds among the k customers with the highest best score."""
    k = current_app.config["CARD_PRECISION_K"]
    day = Transaction.day.label("day")
    best = (
        select(
            day,
            Prediction.model_version.label("version"),
            func.max(Prediction.score).label("score"),
            func.max(case((Transaction.fraud.is_(True), 1), else_=0)).label("fraud"),
        )
        .select_from(Prediction)
        .join(Prediction.transaction)
        .where(in_days, Prediction.score >= current_app.config["MONITOR_CARD_SCORE_FLOOR"])
        .group_by(day, Prediction.model_version, Transaction.customer_id)
    ).subquery()
    rank = (
        func.row_number()
        .over(partition_by=(best.c.day, best.c.version), order_by=best.c.score.desc())
        .label("rank")
    )
    ranked = select(best.c.day, best.c.version, best.c.fraud, rank).subquery()
    db.session.execute(
        insert(MonitoringDay).from_select(
            ["day", "model_version", "card_hits", "k"],
            select(ranked.c.day, ranked.c.version, func.sum(ranked.c.fraud), literal(k, Integer))
            .where(ranked.c.rank <= k)
            .group_by(ranked.c.day, ranked.c.version),
        )
    )


def bins(first_day: int, last_day: int, version: str | None) -> dict[str, np.ndarray]:
    """The histogram rows of a day range as numpy columns (refreshed first)."""
    refresh()
    query = select(
        MonitoringBin.day,
        MonitoringBin.model_version,
        MonitoringBin.bin,
        MonitoringBin.label,
        MonitoringBin.count,
    ).where(MonitoringBin.day >= first_day, MonitoringBin.day <= last_day)
    if version:
        query = query.where(MonitoringBin.model_version == version)
    rows = db.session.execute(query).all()
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
    return {
        "day": np.array(columns[0], dtype=np.int64),
        "version": np.array(columns[1], dtype=object),
        "bin": np.array(columns[2], dtype=np.int64),
        "label": np.array(columns[3], dtype=np.int64),
        "count": np.array(columns[4], dtype=np.int64),
    }


def card_days(first_day: int, last_day: int, version: str | None) -> list[tuple]:
    """(day, version, hits, k) rows of a day range (refreshed by `bins`)."""
    query = select(
        MonitoringDay.day, MonitoringDay.model_version, MonitoringDay.card_hits, MonitoringDay.k
    ).where(MonitoringDay.day >= first_day, MonitoringDay.day <= last_day)
    if version:
        query = query.where(MonitoringDay.model_version == version)
    return db.session.execute(query).all()
