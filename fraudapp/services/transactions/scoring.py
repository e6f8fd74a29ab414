"""Scoring: a transaction → online features from the history → the serving model → a prediction.

The hot path reads both windows (the customer's and the terminal's rows) in one round trip by
covering indexes, computes the features with the same numpy code training uses, and calls the
booster once per batch on one thread; contributions are computed only when an explanation is asked
for. A list is scored at once, stretch by time-ordered stretch, with the same results as scoring its
transactions one by one.

A consented transaction carrying an external id (the API's `transaction_id`) is stored once: sent
again by the same API token with the same details, it is answered from storage (a replay: same
id, score, decision, threshold and version) instead of being scored and stored twice.

While a challenger is in shadow, each batch's feature rows are also scored by it in one more
booster call; its score is stored beside the champion's on stored predictions and never decides
nor leaves the process in an answer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
import operator
from dataclasses import dataclass, field

import numpy as np
from flask import current_app
from sqlalchemy import Integer, bindparam, cast, func, literal_column, select, union_all
from sqlalchemy.exc import IntegrityError

from ...extensions import db
from ...ml import features
from ...ml.explain import explain_rows
from ...ml.registry import LoadedModel
from ...models import Prediction, Transaction
from ...telemetry import record_predictions
from ..serving import challenger_model, decision_threshold, serving_model
from . import history
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
    customer_id: str  # opaque text (`limits.check_id`)
    terminal_id: str
    amount: float
    external_id: str | None = None
    tx_time: int = field(init=False)  # Unix seconds, worked out once: batches read it often

    def __post_init__(self):
        # a whole number given for an id is its decimal text, as everywhere else
        if type(self.customer_id) is not str:
            object.__setattr__(self, "customer_id", str(self.customer_id))
        if type(self.terminal_id) is not str:
            object.__setattr__(self, "terminal_id", str(self.terminal_id))
        seconds = int(self.tx_datetime.replace(tzinfo=dt.UTC).timestamp())
        object.__setattr__(self, "tx_time", seconds)


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
    challenger_version: str | None = None  # the challenger in shadow that also scored it ...
    challenger_score: float | None = None  # ... and its score (stored only, never answered)

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


# The customer rows older than every window but the longest one (the amount against the 90-day
# mean) matter only through their count and sum: they are read as one summary row per customer.
RECENT_DAYS = max(
    *features.CUSTOMER_WINDOWS,
    *(w for w in features.AMOUNT_RATIO_WINDOWS if w < features.CUSTOMER_LOOKBACK_DAYS),
    features.LARGE_TX_WINDOW_DAYS + features.LARGE_AMOUNT_BASELINE_DAYS,
)


def _windows_statement(before_id: bool):
    """Both windows of a set of transactions in one round trip, by covering indexes, as rows of
    (kind, group, time, value): the customers' rows (kind 0: time, amount) — recent ones, and
    the oldest ones only some windows of the set still reach — with one summary row per customer
    for the rows between (kind 2: count, sum of amounts), and the terminals' rows (kind 1: time,
    known fraud). Four narrow columns: every value costs a Python object."""
    customer = Transaction.customer_id.in_(bindparam("customers", expanding=True))
    earlier = (Transaction.id < bindparam("before"),) if before_id else ()

    def kind(number: int):
        return literal_column(str(number), Integer)

    def customer_rows(start: str, end: str):
        return select(
            kind(0), Transaction.customer_id, Transaction.tx_time, Transaction.amount
        ).where(
            customer,
            Transaction.tx_time > bindparam(start),
            Transaction.tx_time <= bindparam(end),
            *earlier,
        )

    summaries = (
        select(kind(2), Transaction.customer_id, func.count(), func.sum(Transaction.amount))
        .where(
            customer,
            Transaction.tx_time > bindparam("oldest_end"),
            Transaction.tx_time <= bindparam("recent_start"),
            *earlier,
        )
        .group_by(Transaction.customer_id)
    )
    terminal_rows = select(
        kind(1),
        Transaction.terminal_id,
        Transaction.tx_time,
        func.coalesce(cast(Transaction.fraud, Integer), 0),
    ).where(
        Transaction.terminal_id.in_(bindparam("terminals", expanding=True)),
        Transaction.tx_time > bindparam("terminal_start"),
        Transaction.tx_time <= bindparam("terminal_end"),
    )
    return union_all(
        customer_rows("recent_start", "end"),
        customer_rows("oldest_start", "oldest_end"),
        summaries,
        terminal_rows,
    )


_WINDOWS = _windows_statement(before_id=False)
_WINDOWS_BEFORE = _windows_statement(before_id=True)


def stored_windows(
    txs: list[TransactionIn], codes: features.GroupCodes, before_id: int | None = None
) -> tuple[features.History, features.History]:
    """The stored rows the features of `txs` can depend on: their customers' rows within the
    customer lookback and their terminals' rows within the terminal lookback, before the delay
    (for a stored transaction, `before_id` is its id: only customer rows stored before it count),
    grouped by the `codes` of their ids.

    Customer rows between `RECENT_DAYS` before the first transaction and the lookback before the
    last one lie in the longest window of every transaction of the set and in no other window:
    they come as a summary row per customer (at the start of the recent stretch, weight = count).
    """
    day = features.DAY
    first, last = min(tx.tx_time for tx in txs), max(tx.tx_time for tx in txs)
    recent_start = first - RECENT_DAYS * day
    params = {
        "customers": sorted({tx.customer_id for tx in txs}),
        "terminals": sorted({tx.terminal_id for tx in txs}),
        "recent_start": recent_start,
        "end": last,
        "oldest_start": first - features.CUSTOMER_LOOKBACK_DAYS * day,
        "oldest_end": min(last - features.CUSTOMER_LOOKBACK_DAYS * day, recent_start),
        "terminal_start": first - features.TERMINAL_LOOKBACK_DAYS * day,
        "terminal_end": last - features.TERMINAL_DELAY_DAYS * day,
    }
    statement = _WINDOWS if before_id is None else _WINDOWS_BEFORE
    if before_id is not None:
        params["before"] = before_id
    # On the session's connection, as plain Core: the ORM's result layer costs more than the query.
    (groups,), table = fetch_grouped(db.session.connection().execute(statement, params), 3, codes)
    kind = table[:, 0].astype(np.int64)
    rows, summary, terminal = (table[kind == k] for k in (0, 2, 1))
    weight = np.concatenate((np.ones(len(rows), np.int64), summary[:, 1].astype(np.int64)))
    return (
        features.History(
            np.concatenate((groups[kind == 0], groups[kind == 2])),
            np.concatenate((rows[:, 1], np.full(len(summary), recent_start))).astype(np.int64),
            np.concatenate((rows[:, 2], summary[:, 2])),
            weight,
        ),
        features.History(groups[kind == 1], terminal[:, 1].astype(np.int64), terminal[:, 2]),
    )


def fetch_table(result, width: int) -> np.ndarray:
    """A numeric result as one float64 matrix (exact for ids and Unix seconds), read from the
    driver's cursor in batches: no result row objects, and never all rows as Python objects."""
    parts = [np.empty((0, width))]
    while rows := result.cursor.fetchmany(_FETCH_BATCH):
        values = itertools.chain.from_iterable(rows)
        parts.append(np.fromiter(values, np.float64, len(rows) * width).reshape(-1, width))
    result.close()
    return np.concatenate(parts)


def fetch_grouped(
    result, width: int, codes: features.GroupCodes, groups_at: tuple[int, ...] = (1,)
) -> tuple[list[np.ndarray], np.ndarray]:
    """A result whose columns `groups_at` hold customer or terminal ids and whose `width` others
    hold numbers: the ids' codes (an array per id column) and the numbers as one float64 matrix,
    read from the driver's cursor in batches. Column by column: no container is created per row
    (a transpose's would wake the garbage collector many times over a large result)."""
    numbers = [k for k in range(width + len(groups_at)) if k not in groups_at]
    ids: list[list] = [[] for _ in groups_at]
    parts = [np.empty((0, width))]
    while rows := result.cursor.fetchmany(_FETCH_BATCH):
        for column, k in zip(ids, groups_at, strict=True):
            column += map(operator.itemgetter(k), rows)
        part = np.empty((len(rows), width))
        for j, k in enumerate(numbers):
            part[:, j] = np.fromiter(map(operator.itemgetter(k), rows), np.float64, len(rows))
        parts.append(part)
    result.close()
    return [codes.of(column) for column in ids], np.concatenate(parts)


_FETCH_BATCH = 50_000


def features_of(
    txs: list[TransactionIn], visible: list[bool], before_id: int | None = None
) -> np.ndarray:
    """The feature matrix of new transactions (in time order), each seeing the stored history and
    the visible ones before it."""
    codes = features.GroupCodes()
    customer = codes.of([tx.customer_id for tx in txs])
    terminal = codes.of([tx.terminal_id for tx in txs])
    customers, terminals = stored_windows(txs, codes, before_id)
    labels = stored_labels(txs, codes)
    if len(txs) == 1:
        tx = txs[0]
        return features.features_of_one(
            int(customer[0]), int(terminal[0]), tx.tx_time, tx.amount, customers, terminals, labels
        )
    return features.features_of_new(
        customer,
        terminal,
        np.fromiter((tx.tx_time for tx in txs), np.int64, len(txs)),
        np.fromiter((tx.amount for tx in txs), np.float64, len(txs)),
        visible,
        customers,
        terminals,
        labels,
    )


def stored_labels(txs: list[TransactionIn], codes: features.GroupCodes) -> features.LabelEvents:
    """The labels the known-fraud features of `txs` can depend on, in one indexed query: those of
    their terminals' and customers' transactions in the delay period before them, known by the
    last one's time (each transaction then counts those known by its own time). For many
    terminals and customers, all the labels of that period: the others do no harm."""
    first, last = min(tx.tx_time for tx in txs), max(tx.tx_time for tx in txs)
    params = {
        "terminals": sorted({tx.terminal_id for tx in txs}),
        "customers": sorted({tx.customer_id for tx in txs}),
        "start": first - features.KNOWN_FRAUD_WINDOW_DAYS * features.DAY,
        "end": last,
        "known_end": history.known_end(last),
    }
    few = len(params["terminals"]) + len(params["customers"]) <= history.FEW_GROUPS
    statement = history.LABELS_OF_GROUPS_IN_PERIOD if few else history.LABELS_IN_PERIOD
    return history.label_events(statement, params, codes)


def online_features(tx: TransactionIn, before_id: int | None = None) -> np.ndarray:
    """The feature vector of a transaction from the history stored before it (for a stored
    transaction, `before_id` is its id: only rows stored before it count)."""
    return features_of([tx], [False], before_id)[0]


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

    A consented one whose external id is stored already (or came earlier in the batch) is
    answered from storage when the same token stored it with the same details, else
    DuplicateTransaction (nothing is stored). When a concurrent request stores the same id first,
    the unique index refuses ours: the batch is rolled back and answered again, this time finding
    the stored one.
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
    """Replays from storage, then the new transactions scored run by run: a run is a stretch of
    the batch in time order, scored at once; it is stored before the next run reads its windows,
    so each transaction sees exactly the ones stored before it, as if sent one by one."""
    results: list[Scored | None] = [None] * len(items)
    replays = _stored_answers(model, items, want_explanation, api_token_id)
    first_of: dict[str, int] = {}  # a consented external id → the batch index that stores it
    new: list[int] = []
    for index, (tx, consent) in enumerate(items):
        if index in replays:
            results[index] = replays[index]
        elif consent and tx.external_id is not None and tx.external_id in first_of:
            continue  # answered below from the earlier one
        else:
            if consent and tx.external_id is not None:
                first_of[tx.external_id] = index
            new.append(index)
    for run in _time_ordered_runs(new, items):
        scored = _score_run(model, items, run, want_explanation, api_token_id)
        for index, result in zip(run, scored, strict=True):
            results[index] = result
    for index, (tx, _) in enumerate(items):
        if results[index] is None:
            results[index] = _repeated(items, first_of[tx.external_id], index, results)
    count_predictions([result for result in results if not result.replayed])
    db.session.commit()
    return results


def _time_ordered_runs(indexes: list[int], items) -> list[list[int]]:
    runs: list[list[int]] = []
    for index in indexes:
        if runs and items[index][0].tx_time >= items[runs[-1][-1]][0].tx_time:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def _score_run(model, items, run, want_explanation, api_token_id) -> list[Scored]:
    txs = [items[index][0] for index in run]
    consents = [items[index][1] for index in run]
    rows = features_of(txs, consents)
    own = model.own(rows)  # the version's columns, picked once
    scores = model.score_own(own)
    challenger, shadow_scores = shadow_scores_of(model, rows)
    threshold = decision_threshold(model)
    explanations = (
        explain_rows(model, rows, current_app.config["EXPLAIN_TOP"])
        if want_explanation
        else [[] for _ in run]
    )
    results = [
        Scored(
            score=float(probability),
            is_fraud=bool(probability >= threshold),
            threshold=threshold,
            model_version=model.version,
            features=dict(zip(model.feature_names, row.tolist(), strict=True)),
            explanation=explanation,
            challenger_version=challenger,
            challenger_score=shadow,
        )
        for probability, row, explanation, shadow in zip(
            scores, own, explanations, shadow_scores, strict=True
        )
    ]
    stored = [k for k, consent in enumerate(consents) if consent]
    if stored:
        ids = store_predictions(
            [txs[k] for k in stored], [results[k] for k in stored], api_token_id
        )
        for k, (prediction_id, receipt) in zip(stored, ids, strict=True):
            results[k].id, results[k].receipt = prediction_id, receipt
    return results


def shadow_scores_of(champion: LoadedModel, rows: np.ndarray) -> tuple[str | None, list]:
    """This worker's challenger's version and its scores of the full feature rows;
    (None, [None, ...]) without a challenger in shadow (see `challenger_scores`)."""
    challenger = challenger_model()
    if challenger is None or challenger.version == champion.version:
        return None, [None] * len(rows)
    return challenger_scores(challenger, rows)


def challenger_scores(
    challenger: LoadedModel, rows: np.ndarray, threads: int = 1
) -> tuple[str | None, list]:
    """The challenger's version and its scores of the full feature rows (one booster call on its
    own columns); (None, [None, ...]) while it cannot score here — the champion's answer never
    waits on it."""
    try:
        return challenger.version, challenger.score_many(rows, threads).tolist()
    except Exception:  # noqa: BLE001 — a challenger's fault must never fail a prediction
        current_app.logger.exception("challenger %s could not score", challenger.version)
        return None, [None] * len(rows)


def _repeated(items, first: int, index: int, results) -> Scored:
    """A consented external id sent twice in one batch: the second is a replay of the first when
    the details agree."""
    tx, earlier = items[index][0], items[first][0]
    if _details(tx) != _details(earlier):
        raise DuplicateTransaction(tx.external_id, index)
    return dataclasses.replace(results[first], receipt=None, replayed=True)


def _details(tx: TransactionIn) -> tuple:
    return (tx.tx_time, tx.customer_id, tx.terminal_id, tx.amount)


def _stored_answers(
    model: LoadedModel,
    items: list[tuple[TransactionIn, bool]],
    want_explanation: bool,
    api_token_id: int | None,
) -> dict[int, Scored]:
    """By batch index, the predictions stored for consented external ids (one query);
    DuplicateTransaction when one was stored with other details, by another token, or not through
    scoring (an import)."""
    wanted = {
        tx.external_id: index
        for index, (tx, consent) in reversed(list(enumerate(items)))
        if consent and tx.external_id is not None
    }
    if not wanted:
        return {}
    found = db.session.execute(
        select(Transaction, Prediction)
        .outerjoin(Prediction, Prediction.transaction_id == Transaction.id)
        .where(Transaction.external_id.in_(list(wanted)))
    ).all()
    answers = {}
    for transaction, prediction in sorted(found, key=lambda f: wanted[f[0].external_id]):
        index = wanted[transaction.external_id]
        tx = items[index][0]
        same = _details(tx) == (
            transaction.tx_time,
            transaction.customer_id,
            transaction.terminal_id,
            transaction.amount,
        )
        if prediction is None or prediction.api_token_id != api_token_id or not same:
            raise DuplicateTransaction(tx.external_id, index)
        answers[index] = _replay(model, prediction, want_explanation)
    # a later copy of a stored id in the same batch is answered like the first
    for index, (tx, consent) in enumerate(items):
        first = wanted.get(tx.external_id) if consent else None
        if first is not None and first != index and first in answers:
            if _details(tx) != _details(items[first][0]):
                raise DuplicateTransaction(tx.external_id, index)
            answers[index] = answers[first]
    return answers


def _replay(model: LoadedModel, prediction: Prediction, want_explanation: bool) -> Scored:
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
        row = model.full_row(result.features)
        result.explanation = explain_rows(model, row[None, :], current_app.config["EXPLAIN_TOP"])[0]
    return result


def _insert_returning_ids(connection, table, rows: list[dict]) -> list[int]:
    """Insert rows in one statement per batch; their new ids, in the rows' order.

    One row (a single prediction) is a plain execute. For more, SQLite gives a single writer's
    rows increasing ids in insertion order, so its ids are sorted (asking SQLAlchemy to match them
    to the rows there costs one statement per row); PostgreSQL's are matched to the rows by
    SQLAlchemy. The statements are built once per table: building one costs more than the insert
    of a row."""
    single, many = _insert_statements(table, connection.dialect.name)
    if len(rows) == 1:
        return [connection.execute(single, rows[0]).scalar_one()]
    if connection.dialect.name == "sqlite":
        return sorted(connection.execute(many, rows).scalars())
    return connection.execute(many, rows).scalars().all()


@functools.cache
def _insert_statements(table, dialect: str) -> tuple:
    """INSERT ... RETURNING id of `table`: for one row, and for many (see _insert_returning_ids)."""
    single = table.insert().returning(table.c.id)
    if dialect == "sqlite":
        return single, single
    return single, table.insert().returning(table.c.id, sort_by_parameter_order=True)


def store_predictions(
    txs: list[TransactionIn],
    results: list[Scored],
    api_token_id: int | None = None,
    source: str = "predict",
    receipts: bool = True,
) -> list[tuple[int, str | None]]:
    """Insert transactions and their predictions in bulk, in the session's transaction (Core
    inserts: the ORM unit of work costs several times more); the prediction ids and receipt codes
    in order. An external id taken meanwhile by a concurrent request is refused by its unique
    index (IntegrityError, for score_batch)."""
    connection = db.session.connection()
    transaction_ids = _insert_returning_ids(
        connection,
        Transaction.__table__,
        [
            {
                "external_id": tx.external_id,
                "tx_time": tx.tx_time,
                "customer_id": tx.customer_id,
                "terminal_id": tx.terminal_id,
                "amount": tx.amount,
                "source": source,
            }
            for tx in txs
        ],
    )
    codes = [new_receipt() if receipts else (None, None) for _ in txs]
    prediction_ids = _insert_returning_ids(
        connection,
        Prediction.__table__,
        [
            {
                "transaction_id": transaction_id,
                "score": result.score,
                "is_fraud": result.is_fraud,
                "threshold": result.threshold,
                "model_version": result.model_version,
                "challenger_version": result.challenger_version,
                "challenger_score": result.challenger_score,
                "features": result.features,
                "receipt_hash": receipt_hash,
                "api_token_id": api_token_id,
            }
            for transaction_id, result, (_, receipt_hash) in zip(
                transaction_ids, results, codes, strict=True
            )
        ],
    )
    mark_days({tx.tx_time // features.DAY for tx in txs})
    return [
        (prediction_id, code)
        for prediction_id, (code, _) in zip(prediction_ids, codes, strict=True)
    ]
