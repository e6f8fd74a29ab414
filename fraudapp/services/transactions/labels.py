"""Labels: user feedback, analyst labels, the label known now, receipts and the right to delete.

Every label given is kept. The label known now is the latest of the highest-ranked source present:
an analyst's label outranks a user's feedback, which outranks an imported label. It is written onto
the transaction with one conditional UPDATE, so concurrent labellers never lose a label or race the
ranking.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import case, delete, select, update

from ...extensions import db
from ...models import LABEL_PRIORITY, MAX_BIG_ID, Label, Prediction, Transaction, utcnow
from ...telemetry import record_label
from .. import audit
from ..tokens import TokenOwner
from .changes import mark_transaction


class NotFound(Exception):
    """No such prediction (or receipt)."""


def _priority(column):
    return case(LABEL_PRIORITY, value=column, else_=-1)


def add_label(
    transaction_id: int, fraud: bool, source: str, actor: str, at: dt.datetime | None = None
) -> Label:
    """Record a label and make it the label known now unless a higher-ranked source has spoken.

    `at` is when the label became known (None: now; a replay passes its simulated time): features
    at a time use only the labels known by then. The conditional UPDATE comes first: it locks the
    transaction's row, so concurrent labels of one transaction are numbered in the order their
    updates apply and the latest label wins.
    """
    db.session.execute(
        update(Transaction)
        .where(
            Transaction.id == transaction_id,
            _priority(Transaction.label_source) <= LABEL_PRIORITY[source],
        )
        .values(fraud=fraud, label_source=source)
    )
    label = Label(
        transaction_id=transaction_id,
        tx_time=_tx_time_of(transaction_id),
        fraud=fraud,
        source=source,
        actor=actor,
        known_at=at or utcnow(),
    )
    db.session.add(label)
    db.session.flush()
    mark_transaction(transaction_id)
    record_label(source)
    return label


def _tx_time_of(transaction_id: int):
    """The labelled transaction's time, read by the label's own INSERT."""
    return select(Transaction.tx_time).where(Transaction.id == transaction_id).scalar_subquery()


def give_feedback(
    prediction_id: int,
    actor: str,
    correct: bool | None = None,
    label: str | None = None,
    token: TokenOwner | None = None,
    at: dt.datetime | None = None,
) -> Label:
    """A user's answer: the prediction was correct or wrong, or the true label; commits.

    `at`: when the answer became known (None: now), as in `add_label`.
    Through the API (`token`), only on the token's own predictions unless its scope is "all":
    another's is NotFound, as an unknown id is, so ids cannot be probed.
    """
    in_range = 0 < prediction_id <= MAX_BIG_ID  # a larger id overflows the database's integer
    prediction = db.session.get(Prediction, prediction_id) if in_range else None
    if prediction is None or not _may_label(token, prediction):
        raise NotFound(prediction_id)
    fraud = (label == "fraud") if label is not None else (prediction.is_fraud == correct)
    result = add_label(prediction.transaction_id, fraud, "feedback", actor, at=at)
    db.session.commit()
    return result


def _may_label(token: TokenOwner | None, prediction: Prediction) -> bool:
    return token is None or token.scope == "all" or prediction.api_token_id == token.id


def label_by_analyst(
    prediction_ids: list[int], fraud: bool, analyst: str, at: dt.datetime | None = None
) -> int:
    """An analyst labels one or more predictions; returns how many; audited; commits.

    `at`: when the labels became known (None: now), as in `add_label`."""
    found = db.session.execute(
        select(Prediction.id, Prediction.transaction_id).where(Prediction.id.in_(prediction_ids))
    ).all()
    for _, transaction_id in found:
        add_label(transaction_id, fraud, "analyst", analyst, at=at)
    if found:
        audit.record(
            "label.analyst",
            target=",".join(str(p) for p, _ in found)[:120],
            details={"fraud": fraud, "predictions": [p for p, _ in found]},
        )
    db.session.commit()
    return len(found)


def new_receipt() -> tuple[str, str]:
    """A receipt code for the person and the hash we keep of it."""
    code = secrets.token_urlsafe(12)
    return code, receipt_hash(code)


def receipt_hash(code: str) -> str:
    """The stored form of a receipt code."""
    return hashlib.sha256(code.encode()).hexdigest()


def by_receipt(code: str) -> Prediction:
    """The prediction a receipt code belongs to."""
    prediction = db.session.scalar(
        select(Prediction).where(Prediction.receipt_hash == receipt_hash(code))
    )
    if prediction is None:
        raise NotFound("receipt")
    return prediction


def delete_by_receipt(code: str) -> None:
    """Delete the transaction, its features, prediction and labels; only counts remain; commits."""
    prediction = by_receipt(code)
    transaction_id = prediction.transaction_id
    mark_transaction(transaction_id)
    db.session.execute(delete(Label).where(Label.transaction_id == transaction_id))
    db.session.execute(delete(Prediction).where(Prediction.id == prediction.id))
    db.session.execute(delete(Transaction).where(Transaction.id == transaction_id))
    audit.record("data.deleted", target=f"prediction {prediction.id}", actor="data subject")
    db.session.commit()
