"""Scoring a file: a Handbook-format CSV scored in time order, chunk by chunk.

Each row sees the stored history and the file's earlier rows, as if the file's transactions had been
sent one by one with consent; with `store` they also join the history (transactions with their
predictions, in one database transaction). Memory stays bounded: the file is read in chunks and
only the rows within the feature lookback are kept between chunks. The booster scores a chunk on a
thread of its own while the next chunk is read and its features computed (two chunks at most).

A bad file is refused whole: the output is written to a temporary file renamed into place at the
end, and the stored rows are committed only then, so a refusal on the last line leaves nothing.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from flask import current_app
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError

from ...extensions import db
from ...i18n import Message
from ...ml import features
from ...ml.explain import explain_rows
from ...models import Transaction, UtcDateTime, utcnow
from ...telemetry import record_scored
from ..serving import challenger_model, decision_threshold, serving_model
from . import history
from .changes import mark_days
from .counts import add_counts
from .scoring import challenger_scores, fetch_grouped

CHUNK_ROWS = 100_000
HISTOGRAM_BINS = 10
COLUMNS = (
    *history.REQUIRED,  # the input's columns, then the scores
    "score",
    "is_fraud",
    "threshold",
    "model_version",
    "reasons",
)
REASONS = 3  # reasons given for each flagged row
LOOKBACK_DAYS = max(features.CUSTOMER_LOOKBACK_DAYS, features.TERMINAL_LOOKBACK_DAYS)


class FileRefused(Exception):
    """The file cannot be scored; nothing was written or stored. The message names the line and
    the reason (the header is line 1)."""


@dataclass
class FileSummary:
    """What scoring a file gave."""

    rows: int = 0
    flagged: int = 0
    threshold: float = 0.0
    model_version: str = ""
    stored: int = 0  # rows that joined the history
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)


def count_rows(source: str | os.PathLike) -> int:
    """The number of data rows, from a fast count of line ends (for progress)."""
    opener = gzip.open if str(source).endswith(".gz") else open
    lines, last = 0, b"\n"
    try:
        with opener(source, "rb") as handle:
            while block := handle.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
    except (OSError, EOFError) as exc:
        raise FileRefused(Message("unreadable file: %(reason)s", reason=str(exc)[:500])) from exc
    return max(lines + (last != b"\n") - 1, 0)


def score_file(
    source: str | os.PathLike,
    out: str | os.PathLike,
    store: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> FileSummary:
    """Score `source` (.csv or .csv.gz) into `out` (gzip when it ends in .gz), written whole or
    not at all; with `store` the rows join the history. `progress(done, total)` after each chunk.
    Raises FileRefused before anything is written or stored."""
    total = count_rows(source)
    out = Path(out)
    partial = out.with_name(f".{out.name}.partial")
    scorer = _FileScorer(store, current_app.config["FILE_SCORING_THREADS"])
    report = progress or (lambda done, total: None)
    try:
        chunks = history.read_transaction_chunks(source, CHUNK_ROWS)
        with (
            _open_output(partial) as output,
            closing(chunks),
            ThreadPoolExecutor(1, "score-file") as booster,
        ):
            csv.writer(output, lineterminator="\n").writerow(COLUMNS)
            for chunk in chunks:
                scorer.add(chunk, output, booster)
                report(scorer.summary.rows, max(total, scorer.summary.rows))
            scorer.flush(output)
            report(scorer.summary.rows, max(total, scorer.summary.rows))
        if not scorer.summary.rows:
            raise FileRefused(history.at_line(2, Message("the file has no transactions")))
        scorer.finish()
        partial.replace(out)
    except history.ImportRefused as exc:
        raise FileRefused(*exc.args) from exc
    finally:
        db.session.rollback()  # a no-op after the commit in finish()
        partial.unlink(missing_ok=True)
    return scorer.summary


def _open_output(path: Path):
    if path.name.endswith(".gz.partial"):
        return gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=5)
    return open(path, "w", encoding="utf-8", newline="")


class _FileScorer:
    """The state carried from chunk to chunk: the model, the rows within the lookback (stored ones
    and the file's), the ids seen so far and the running summary."""

    def __init__(self, store: bool, threads: int):
        self.store = store
        serving = serving_model()
        self.threshold = decision_threshold(serving)
        self.model = serving.private_copy()  # the worker's requests keep theirs to themselves
        self.features_json = _features_json(self.model.feature_names)
        challenger = challenger_model() if store else None  # stored rows get its score too
        self.challenger = (
            challenger.private_copy()
            if challenger is not None and challenger.version != self.model.version
            else None
        )
        self.threads = threads
        self.summary = FileSummary(threshold=self.threshold, model_version=self.model.version)
        self.codes = features.GroupCodes()  # of the ids seen, for the features' groups
        self.recent = _Recent()
        self.fetched_until: int | None = None  # stored rows up to this time are in `recent`
        self.last_time: int | None = None
        self.ids: np.ndarray = np.empty(0, np.uint64)  # hashes of the ids seen, sorted
        self.counts: Counter = Counter()
        self.pending: tuple | None = None  # the chunk being scored: chunk, rows, future scores

    def add(self, chunk: pd.DataFrame, output, booster: Executor) -> None:
        """Check one chunk of checked rows and work out its features; `booster` scores them
        while the chunk before it is written (and stored) and the next one read: LightGBM lets
        go of the interpreter, so the file's Python work and the booster share two cores."""
        if chunk.empty:
            return
        rows = self._features(chunk)
        scored = booster.submit(self._score, rows)
        self.flush(output)
        self.pending = (chunk, rows, scored)

    def flush(self, output) -> None:
        """Write (and store) the chunk being scored, once its scores are in."""
        if self.pending is None:
            return
        chunk, rows, scored = self.pending
        self.pending = None
        own, scores, flagged, reasons = scored.result()
        _write(output, chunk, scores, flagged, self.threshold, self.model.version, reasons)
        if self.store:
            self._store(chunk, own, scores, flagged, self._challenger_scores(rows))
        self._summarize(scores, flagged)

    def _score(self, rows: np.ndarray) -> tuple:
        """The chunk's own columns, scores, flags and the flagged rows' reasons (no Flask here:
        it runs on the booster's thread)."""
        own = self.model.own(rows)  # the version's columns, picked once
        scores = self.model.score_own(own, self.threads)
        flagged = scores >= self.threshold
        reasons = np.full(len(rows), "", dtype=object)
        if flagged.any():
            reasons[flagged] = [
                "; ".join(reason["text"] for reason in explained)
                for explained in explain_rows(self.model, rows[flagged], REASONS)
            ]
        return own, scores, flagged, reasons

    def _features(self, chunk: pd.DataFrame) -> np.ndarray:
        """The chunk's feature rows, each seeing the stored history and the file's rows before
        it; the chunk then joins the rows within the lookback."""
        self._check_order_and_ids(chunk)
        time = chunk["tx_time"].to_numpy(np.int64)
        first, last = int(time[0]), int(time[-1])
        self._fetch_stored(first, last)
        self.recent.forget_before(first - LOOKBACK_DAYS * features.DAY)
        customer = self.codes.of(chunk["customer_id"].to_numpy(object))
        terminal = self.codes.of(chunk["terminal_id"].to_numpy(object))
        rows = features.features_of_new(
            customer,
            terminal,
            time,
            chunk["amount"].to_numpy(np.float64),
            np.ones(len(chunk), bool),
            self.recent.customers(),
            self.recent.terminals(first),
            _stored_labels(first, last, self.codes),
        )
        self.recent.add(customer, terminal, chunk)
        return rows

    def _check_order_and_ids(self, chunk: pd.DataFrame) -> None:
        time = chunk["tx_time"].to_numpy(np.int64)
        previous = time[0] if self.last_time is None else self.last_time
        earlier = np.flatnonzero(np.diff(time, prepend=previous) < 0)
        if len(earlier):
            raise FileRefused(
                history.at_line(
                    int(chunk.index[earlier[0]]) + 2,
                    Message(
                        "TX_DATETIME is earlier than the line before; sort the file by TX_DATETIME"
                    ),
                )
            )
        self.last_time = int(time[-1])
        hashes = pd.util.hash_array(chunk["external_id"].to_numpy(object))
        seen = np.flatnonzero(_sorted_contains(self.ids, hashes))
        if len(seen):
            raise FileRefused(history.at_line(int(chunk.index[seen[0]]) + 2, history.TWICE))
        # both sorted: a stable sort merges the two runs in linear time
        self.ids = np.sort(np.concatenate((self.ids, np.sort(hashes))), kind="stable")

    def _challenger_scores(self, rows: np.ndarray) -> tuple[str | None, list]:
        """The challenger in shadow's version and scores of the chunk, as for requests."""
        if self.challenger is None:
            return None, [None] * len(rows)
        return challenger_scores(self.challenger, rows, self.threads)

    def _fetch_stored(self, first: int, last: int) -> None:
        """Read the stored rows the chunk's windows can reach and have not been read yet. Before
        the first chunk, those older than the terminals' lookback are read for the customers'
        windows only: three columns instead of five."""
        if self.fetched_until is None:
            start = first - LOOKBACK_DAYS * features.DAY
            self.fetched_until = first - features.TERMINAL_LOOKBACK_DAYS * features.DAY
            result = db.session.connection().execute(
                _STORED_CUSTOMER_ROWS, {"start": start, "end": self.fetched_until}
            )
            (customer,), table = fetch_grouped(result, 2, self.codes, groups_at=(0,))
            self.recent.add_stored_customers(customer, table)
        result = db.session.connection().execute(
            _STORED_ROWS, {"start": self.fetched_until, "end": last}
        )
        (customer, terminal), table = fetch_grouped(result, 3, self.codes, groups_at=(0, 1))
        self.recent.add_stored(np.column_stack((customer, terminal, table)))
        self.fetched_until = last

    def _store(self, chunk, own, scores, flagged, shadow) -> None:
        """Add the chunk's rows and predictions (`own`: the model's feature columns; `shadow`:
        the challenger's version and scores) to the history, in bulk: a staging table loaded by
        COPY (PostgreSQL) or executemany (SQLite), then two INSERT … SELECT."""
        connection = db.session.connection()
        postgres = connection.dialect.name == "postgresql"
        if not self.summary.stored:
            connection.execute(text(_STAGING_TABLE))
        staged = zip(
            chunk.index.tolist(),
            chunk["external_id"].tolist(),
            chunk["tx_time"].tolist(),
            chunk["customer_id"].tolist(),
            chunk["terminal_id"].tolist(),
            chunk["amount"].tolist(),
            scores.tolist(),
            flagged.astype(int).tolist(),
            [self.features_json % tuple(row) for row in own.tolist()],
            shadow[1],
            strict=True,
        )
        cursor = connection.connection.driver_connection.cursor()
        if postgres:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows(staged)
            with cursor.copy("COPY file_staging FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(buffer.getvalue())
        else:
            cursor.executemany(
                "INSERT INTO file_staging VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", staged
            )
        now = {"now": utcnow(), "source": "file"}
        try:
            connection.execute(_STAGED_TRANSACTIONS, now)
        except IntegrityError as exc:
            db.session.rollback()
            raise FileRefused(_already_stored(chunk)) from exc
        predictions = _STAGED_PREDICTIONS_PG if postgres else _STAGED_PREDICTIONS
        connection.execute(
            predictions,
            now
            | {"threshold": self.threshold, "version": self.model.version, "challenger": shadow[0]},
        )
        connection.execute(text("DELETE FROM file_staging"))
        mark_days(np.unique(chunk["tx_time"].to_numpy(np.int64) // features.DAY).tolist())
        self.summary.stored += len(chunk)

    def _summarize(self, scores, flagged) -> None:
        self.summary.rows += len(scores)
        self.summary.flagged += int(flagged.sum())
        bins = np.minimum((scores * HISTOGRAM_BINS).astype(int), HISTOGRAM_BINS - 1)
        histogram = np.bincount(bins, minlength=HISTOGRAM_BINS)
        self.summary.histogram = [
            a + int(b) for a, b in zip(self.summary.histogram, histogram, strict=True)
        ]
        self.counts[(self.model.version, True, self.store)] += int(flagged.sum())
        self.counts[(self.model.version, False, self.store)] += int((~flagged).sum())

    def finish(self) -> None:
        """Count the predictions and commit what was stored."""
        db.session.commit()
        add_counts(self.counts)
        record_scored(self.model.version, self.summary.flagged, self.summary.rows)


_STORED_CUSTOMER_ROWS = select(
    Transaction.customer_id, Transaction.tx_time, Transaction.amount
).where(Transaction.tx_time > bindparam("start"), Transaction.tx_time <= bindparam("end"))
_STORED_ROWS = select(
    Transaction.customer_id,
    Transaction.terminal_id,
    Transaction.tx_time,
    Transaction.amount,
    db.func.coalesce(db.cast(Transaction.fraud, db.Integer), 0),
).where(Transaction.tx_time > bindparam("start"), Transaction.tx_time <= bindparam("end"))


_STAGING_TABLE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS file_staging (line BIGINT, external_id VARCHAR(64), "
    "tx_time BIGINT, customer_id VARCHAR(64), terminal_id VARCHAR(64), amount FLOAT, score FLOAT, "
    "is_fraud INTEGER, features TEXT, challenger_score FLOAT)"
)
_STAGED_TRANSACTIONS = text(
    "INSERT INTO transactions (external_id, tx_time, customer_id, terminal_id, amount, source, "
    "created_at) SELECT external_id, tx_time, customer_id, terminal_id, amount, :source, :now "
    "FROM file_staging ORDER BY line"
).bindparams(bindparam("now", type_=UtcDateTime()))
_PREDICTIONS_FROM_STAGING = (
    "INSERT INTO predictions (transaction_id, score, is_fraud, threshold, model_version, "
    "features, challenger_version, challenger_score, created_at) SELECT t.id, s.score, "
    "s.is_fraud = 1, :threshold, :version, {features}, :challenger, s.challenger_score, "
    ":now FROM file_staging s JOIN transactions t ON t.external_id = s.external_id ORDER BY s.line"
)
_STAGED_PREDICTIONS = text(_PREDICTIONS_FROM_STAGING.format(features="s.features")).bindparams(
    bindparam("now", type_=UtcDateTime())
)
_STAGED_PREDICTIONS_PG = text(
    _PREDICTIONS_FROM_STAGING.format(features="CAST(s.features AS JSON)")
).bindparams(bindparam("now", type_=UtcDateTime()))


def _features_json(names) -> str:
    """A prediction's feature snapshot (the model's own features), as the JSON the API path stores
    (Python's float repr is JSON): a %-template of the values."""
    return "{" + ", ".join(f'"{name}": %r' for name in names) + "}"


class _Recent:
    """Rows within the lookback (all earlier in time than the chunk being scored, or stored ones
    up to its last time), sorted stably by customer and time: in the order added within a
    customer's second, as the features' stable sort wants them, and already in its order, which
    makes their sort of the customers' windows cheap. Customers and terminals by their codes."""

    def __init__(self):
        self.table = np.empty((0, 5))  # customer, terminal, time, amount, known fraud

    def add_stored(self, table: np.ndarray) -> None:
        self._add(table)

    def _add(self, rows: np.ndarray) -> None:
        table = np.concatenate((self.table, rows))
        keys = table[:, 0].astype(np.int64) * _GROUP_SHIFT + table[:, 2].astype(np.int64)
        self.table = table[np.argsort(keys, kind="stable")]  # nearly sorted: a quick merge

    def add_stored_customers(self, customer: np.ndarray, table: np.ndarray) -> None:
        """Stored rows older than the terminals' lookback (`table`: time, amount): no terminal
        (-1) and no known fraud, as no terminal window reaches them."""
        none = np.full(len(customer), -1.0)
        self.add_stored(np.column_stack((customer, none, table, np.zeros(len(customer)))))

    def add(self, customer: np.ndarray, terminal: np.ndarray, chunk: pd.DataFrame) -> None:
        new = np.column_stack(
            (
                customer,
                terminal,
                chunk["tx_time"].to_numpy(np.float64),
                chunk["amount"].to_numpy(np.float64),
                np.zeros(len(chunk)),
            )
        )
        self._add(new)

    def forget_before(self, time: int) -> None:
        self.table = self.table[self.table[:, 2] > time]

    def customers(self) -> features.History:
        t = self.table
        return features.History(t[:, 0].astype(np.int64), t[:, 2].astype(np.int64), t[:, 3])

    def terminals(self, first: int) -> features.History:
        """The rows the terminal windows of rows from time `first` on can reach."""
        t = self.table[self.table[:, 2] > first - features.TERMINAL_LOOKBACK_DAYS * features.DAY]
        return features.History(t[:, 1].astype(np.int64), t[:, 2].astype(np.int64), t[:, 4])


_GROUP_SHIFT = np.int64(1) << np.int64(32)  # a customer's key: code · 2³² + Unix seconds


def _stored_labels(first: int, last: int, codes: features.GroupCodes) -> features.LabelEvents:
    """The labels the known-fraud features of a chunk from `first` to `last` can depend on: those
    of the stored transactions of the delay period before it, known by its last time."""
    params = {
        "start": first - features.KNOWN_FRAUD_WINDOW_DAYS * features.DAY,
        "end": last,
        "known_end": history.known_end(last),
    }
    return history.label_events(history.LABELS_IN_PERIOD, params, codes)


def _sorted_contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    if not len(sorted_values):
        return np.zeros(len(values), bool)
    at = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[at] == values


def _write(output, chunk, scores, flagged, threshold, version, reasons) -> None:
    """Append the chunk's scored rows (the csv module: quoted where needed, floats exact)."""
    when = pd.Series(chunk["tx_time"].to_numpy(np.int64).astype("datetime64[s]"))
    csv.writer(output, lineterminator="\n").writerows(
        zip(
            chunk["external_id"].tolist(),
            when.dt.strftime("%Y-%m-%d %H:%M:%S").tolist(),
            chunk["customer_id"].tolist(),
            chunk["terminal_id"].tolist(),
            chunk["amount"].tolist(),
            scores.tolist(),
            flagged.astype(int).tolist(),
            itertools.repeat(repr(float(threshold))),  # as the csv module writes a float
            itertools.repeat(version),
            reasons.tolist(),
            strict=False,  # the repeats are endless
        )
    )


def _already_stored(chunk: pd.DataFrame) -> Message:
    """The refusal of a chunk whose insert hit a stored TRANSACTION_ID: which line."""
    ids = chunk["external_id"].tolist()
    stored: set[str] = set()
    for start in range(0, len(ids), 500):
        stored |= set(
            db.session.scalars(
                select(Transaction.external_id).where(
                    Transaction.external_id.in_(ids[start : start + 500])
                )
            )
        )
    line = next((i + 2 for i, e in zip(chunk.index, ids, strict=True) if e in stored), None)
    return history.at_line(
        line if line is not None else 2,
        Message("TRANSACTION_ID is already stored in the history"),
    )
