"""Transaction days whose stored predictions or labels changed.

Every writer of predictions and labels notes the day it touched, in its own database transaction;
the monitoring aggregates recompute just those days before they are read.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from ...extensions import db
from ...models import DirtyDay, Prediction, Transaction, dialect_insert


def mark_days(days: Iterable[int]) -> None:
    """Note transaction days (numbers since the epoch) whose aggregates changed."""
    values = [{"day": int(day)} for day in set(days)]
    if values:
        db.session.execute(dialect_insert(DirtyDay.__table__).on_conflict_do_nothing(), values)


def mark_transaction(transaction_id: int) -> None:
    """Note the day of one transaction."""
    day = db.session.scalar(select(Transaction.day).where(Transaction.id == transaction_id))
    if day is not None:
        mark_days([day])


def mark_all() -> None:
    """After bulk changes: every day that has a stored prediction."""
    days = db.session.scalars(
        select(Transaction.day).distinct().select_from(Prediction).join(Prediction.transaction)
    ).all()
    mark_days(days)
