"""Scoring: a transaction → online features from the history → the serving model → a prediction.

The hot path runs two indexed range queries, numpy feature code and one booster call on one thread;
contributions are computed only when an explanation is asked for.

A consented transaction carrying an external id (the API's `transaction_id`) is stored once: sent
again by the same API token with the same details, it is answered from storage (a replay: same
id, score, decision, threshold and version) instead of being scored and stored twice.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from flask import current_app
from sqlalchemy import Integer, bindparam, cast, func, select
from sqlalchemy.exc import IntegrityError

from ...extensions import db
from ...ml import features
from ...ml.explain import explain
from ...ml.registry import LoadedModel
from ...models import DailyCount, Prediction, Transaction, dialect_insert
from ...telemetry import record_predictions
from ..serving import decision_threshold, serving_model
from .changes import mark_days
from .counts import count_predictions
from .labels import new_receipt


class DuplicateTransaction(Exception):
    """A transaction with this external id is already stored with other details or by another
    client; `index` is its place in the batch."""

    def __init__(self, external_id: str | None, index: int = 0):
        super().__init__(external_id)
        self.index = index


@dataclass(frozen=True)
class TransactionIn:
    """A validated transaction to score."""

    tx_datetime: dt.datetime  # naive UTC
    customer_id: int
    terminal_id: int
    amount: float
    external_id: str | None = None

    @property
    def tx_time(self) -> int:
        """Unix seconds."""
        return int(self.tx_datetime.replace(tzinfo=dt.UTC).timestamp())


@dataclass
class Scored:
    """The outcome of scoring one transaction."""

    score: float
    is_fraud: bool
    threshold: float
    model_version: str
    features: dict[str, float]
    explanation: list[dict] = field(default_factory=list)
    id: int | None = None  # the stored prediction's id (None without consent)
    receipt: str | None = None  # the code that lets the person see or delete what is stored
    replayed: bool = False  # answered from storage: its transaction_id was stored already

    def as_json(self, explain: bool) -> dict:
        """The API representation."""
        body = {
            "id": self.id,
            "score": self.score,
            "is_fraud": self.is_fraud,
            "threshold": self.threshold,
            "model_version": self.model_version,
            "stored": self.id is not None,
            "receipt": self.receipt,
            "replayed": self.replayed,
        }
        if explain:
            body |= {"features": self.features, "explanation": self.explanation}
        return body


_CUSTOMER_ROWS = select(Transaction.tx_time, Transaction.amount).where(
    Transaction.customer_id == bindparam("customer"),
    Transaction.tx_time > bindparam("start"),
    Transaction.tx_time <= bindparam("end"),
)
_TERMINAL_ROWS = select(
    Transaction.tx_time, func.coalesce(cast(Transaction.fraud, Integer), 0)
).where(
    Transaction.terminal_id == bindparam("terminal"),
    Transaction.tx_time > bindparam("start"),
    Transaction.tx_time <= bindparam("end"),
)


def _rows(statement, **params) -> tuple[np.ndarray, np.ndarray]:
    # On the session's connection, as plain Core: the ORM's result layer costs more than the query.
    rows = db.session.connection().execute(statement, params).all()
    if not rows:
        return np.empty(0, np.int64), np.empty(0)
    times, values = zip(*rows, strict=True)
    return np.fromiter(times, np.int64, len(rows)), np.fromiter(values, np.float64, len(rows))


def online_features(tx: TransactionIn, before_id: int | None = None) -> np.ndarray:
    """The feature vector of a transaction from the history stored before it (for a stored
    transaction, `before_id` is its id: only rows stored before it count)."""
    t, day = tx.tx_time, features.DAY
    customer_rows = _CUSTOMER_ROWS
    if before_id is not None:
        customer_rows = customer_rows.where(Transaction.id < before_id)
    customer = _rows(
        customer_rows,
        customer=tx.customer_id,
        start=t - features.CUSTOMER_LOOKBACK_DAYS * day,
        end=t,
    )
    terminal = _rows(
        _TERMINAL_ROWS,
        terminal=tx.terminal_id,
        start=t - features.TERMINAL_LOOKBACK_DAYS * day,
        end=t - features.TERMINAL_DELAY_DAYS * day,
    )
    return features.features_for_one(t, tx.amount, customer, terminal)


def score(
    tx: TransactionIn,
    consent: bool,
    want_explanation: bool = False,
    api_token_id: int | None = None,
) -> Scored:
    """Score one transaction and, with consent, store it with its prediction (and the API token
    that asked); commits."""
    return score_batch([(tx, consent)], want_explanation, api_token_id)[0]


_ATTEMPTS = 3  # a batch that lost a race on a transaction_id is answered again from storage


def score_batch(
    items: list[tuple[TransactionIn, bool]],
    want_explanation: bool,
    api_token_id: int | None = None,
) -> list[Scored]:
    """Score transactions in order, each seeing the ones stored before it; one commit.

    A consented one whose external id is stored already is answered from storage when the same
    token stored it with the same details, else DuplicateTransaction (nothing is stored). When a
    concurrent request stores the same id first, the unique index refuses ours: the batch is
    rolled back and answered again, this time finding the stored one.
    """
    model = serving_model()
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            results = _answer_all(model, items, want_explanation, api_token_id)
            break
        except IntegrityError as exc:
            db.session.rollback()
            if attempt == _ATTEMPTS:
                raise DuplicateTransaction("transaction_id") from exc
        except DuplicateTransaction:
            db.session.rollback()
            raise
    record_predictions([result for result in results if not result.replayed])
    return results


def _answer_all(
    model: LoadedModel,
    items: list[tuple[TransactionIn, bool]],
    want_explanation: bool,
    api_token_id: int | None,
) -> list[Scored]:
    results = [
        _answer(model, index, tx, consent, want_explanation, api_token_id)
        for index, (tx, consent) in enumerate(items)
    ]
    count_predictions([result for result in results if not result.replayed])
    db.session.commit()
    return results


def _count_predictions(results: list[Scored]) -> None:
    """Add the anonymous daily counts (they outlive any deletion)."""
    day = dt.datetime.now(dt.UTC).date()
    keys = Counter((r.model_version, r.is_fraud, r.id is not None) for r in results)
    table = DailyCount.__table__
    for (version, is_fraud, consented), n in keys.items():
        statement = dialect_insert(table).values(
            day=day, model_version=version, is_fraud=is_fraud, consented=consented, count=n
        )
        db.session.execute(
            statement.on_conflict_do_update(
                index_elements=["day", "model_version", "is_fraud", "consented"],
                set_={"count": table.c.count + n},
            )
        )


def _answer(
    model: LoadedModel,
    index: int,
    tx: TransactionIn,
    consent: bool,
    want_explanation: bool,
    api_token_id: int | None,
) -> Scored:
    """The stored answer of a consented transaction whose external id is stored, else a new one."""
    if consent and tx.external_id is not None:
        stored = _stored_answer(model, index, tx, want_explanation, api_token_id)
        if stored is not None:
            return stored
    return _score_one(model, tx, consent, want_explanation, api_token_id)


def _stored_answer(
    model: LoadedModel,
    index: int,
    tx: TransactionIn,
    want_explanation: bool,
    api_token_id: int | None,
) -> Scored | None:
    """The prediction stored for this external id (None: not stored); DuplicateTransaction when it
    was stored with other details, by another token, or not through scoring (an import)."""
    found = db.session.execute(
        select(Transaction, Prediction)
        .outerjoin(Prediction, Prediction.transaction_id == Transaction.id)
        .where(Transaction.external_id == tx.external_id)
    ).first()
    if found is None:
        return None
    transaction, prediction = found
    same = (transaction.tx_time, transaction.customer_id, transaction.terminal_id) == (
        tx.tx_time,
        tx.customer_id,
        tx.terminal_id,
    ) and transaction.amount == tx.amount
    if prediction is None or prediction.api_token_id != api_token_id or not same:
        raise DuplicateTransaction(tx.external_id, index)
    result = Scored(
        score=prediction.score,
        is_fraud=prediction.is_fraud,
        threshold=prediction.threshold,
        model_version=prediction.model_version,
        features=dict(prediction.features),
        id=prediction.id,
        replayed=True,
    )
    if want_explanation and model.version == prediction.model_version:
        row = np.array([result.features[name] for name in features.FEATURES], dtype=np.float64)
        result.explanation = explain(model, row, current_app.config["EXPLAIN_TOP"])
    return result


def _score_one(
    model: LoadedModel,
    tx: TransactionIn,
    consent: bool,
    want_explanation: bool,
    api_token_id: int | None = None,
):
    row = online_features(tx)
    probability = model.score(row)
    threshold = decision_threshold(model)
    result = Scored(
        score=probability,
        is_fraud=probability >= threshold,
        threshold=threshold,
        model_version=model.version,
        features=dict(zip(features.FEATURES, row.tolist(), strict=True)),
    )
    if want_explanation:
        result.explanation = explain(model, row, current_app.config["EXPLAIN_TOP"])
    if consent:
        result.id, result.receipt = _store(tx, result, api_token_id)
    return result


_INSERT_TRANSACTION = Transaction.__table__.insert()
_INSERT_PREDICTION = Prediction.__table__.insert()


def _store(tx: TransactionIn, result: Scored, api_token_id: int | None = None) -> tuple[int, str]:
    """Insert the transaction and its prediction: two Core inserts in the session's transaction (the
    ORM unit of work costs several times more for two rows); an external id taken meanwhile by a
    concurrent request is refused by its unique index (IntegrityError, for score_batch)."""
    connection = db.session.connection()
    transaction_id = connection.execute(
        _INSERT_TRANSACTION,
        {
            "external_id": tx.external_id,
            "tx_time": tx.tx_time,
            "customer_id": tx.customer_id,
            "terminal_id": tx.terminal_id,
            "amount": tx.amount,
            "source": "predict",
        },
    ).inserted_primary_key[0]
    receipt, receipt_hash = new_receipt()
    prediction_id = connection.execute(
        _INSERT_PREDICTION,
        {
            "transaction_id": transaction_id,
            "score": result.score,
            "is_fraud": result.is_fraud,
            "threshold": result.threshold,
            "model_version": result.model_version,
            "features": result.features,
            "receipt_hash": receipt_hash,
            "api_token_id": api_token_id,
        },
    ).inserted_primary_key[0]
    mark_days([tx.tx_time // features.DAY])
    return prediction_id, receipt
