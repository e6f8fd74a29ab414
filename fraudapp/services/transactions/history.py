"""The transaction history: bulk import of Handbook-format files and loading it for training.

An import is all or nothing: the whole file is parsed and checked first (a bad line is reported by
number), then loaded into a staging table and merged in one database transaction. Transactions whose
TRANSACTION_ID is already stored are skipped, so importing a file twice adds nothing twice.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import DateTime, bindparam, case, or_, select, text

from ...extensions import db
from ...i18n import Message
from ...ml.data import History, ordered_codes, to_unix_seconds
from ...ml.features import DAY, TERMINAL_DELAY_DAYS, GroupCodes, LabelEvents
from ...models import GIVEN_LABELS, LABEL_PRIORITY, Label, Transaction, utcnow
from . import limits
from .limits import (
    AMOUNT_MESSAGE,
    CONTROL,
    CONTROL_MESSAGE,
    EARLIEST,
    MAX_AMOUNT,
    MAX_ID,
    MAX_TRANSACTION_ID,
)

REQUIRED = ("TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT")
OPTIONAL = ("TX_FRAUD",)
CHUNK = 50_000
IMPORT_DELAY_SECONDS = TERMINAL_DELAY_DAYS * DAY  # imported labels: known at the Handbook's delay


class ImportRefused(Exception):
    """The file cannot be imported; nothing was written. Its message (a Message) names the line."""


TWICE = Message("TRANSACTION_ID appears twice in the file")


@dataclass
class ImportResult:
    """What an import did."""

    rows: int
    inserted: int
    labels: int

    @property
    def skipped(self) -> int:
        """Rows already in the history."""
        return self.rows - self.inserted


_UNREADABLE = (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError, ValueError)


def read_transactions(source) -> pd.DataFrame:
    """Parse and check a Handbook-format CSV (path or file object, gzip by extension)."""
    try:
        frame = pd.read_csv(source, **_CSV_OPTIONS)
    except _UNREADABLE as exc:  # ValueError: no columns at all
        raise ImportRefused(Message("unreadable CSV: %(reason)s", reason=str(exc)[:500])) from exc
    return read_transactions_frame(frame)


def read_transaction_chunks(source, rows: int = CHUNK) -> Iterator[pd.DataFrame]:
    """Parse and check a Handbook-format CSV chunk by chunk, so memory stays bounded; a bad line
    refuses the file (ImportRefused, naming the line) when its chunk is read."""
    try:
        with pd.read_csv(source, chunksize=rows, **_CSV_OPTIONS) as reader:
            for chunk in reader:
                yield _checked_columns(chunk)
    except _UNREADABLE as exc:
        raise ImportRefused(Message("unreadable CSV: %(reason)s", reason=str(exc)[:500])) from exc


_CSV_OPTIONS = {
    "usecols": lambda c: c in REQUIRED + OPTIONAL,
    "dtype": str,
    "keep_default_na": False,
    "skip_blank_lines": False,
}


def read_transactions_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a DataFrame in the Handbook's columns (any dtypes) as a file's rows are checked."""
    return _checked_columns(frame.reset_index(drop=True))


def _checked_columns(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ImportRefused(
            at_line(1, Message("missing column(s) %(columns)s", columns=", ".join(missing)))
        )
    frame = frame[[c for c in REQUIRED + OPTIONAL if c in frame.columns]].astype(str)
    return _checked(frame)


def _checked(frame: pd.DataFrame) -> pd.DataFrame:
    """Typed columns; the first bad value is refused with its line number (header is line 1)."""
    ids = frame["TRANSACTION_ID"]
    if not _plain(ids, MAX_TRANSACTION_ID):
        ids = ids.str.strip()
        _refuse_where(
            (ids == "") | (ids.str.len() > MAX_TRANSACTION_ID),
            Message("TRANSACTION_ID must be 1-%(max)s characters", max=MAX_TRANSACTION_ID),
        )
        _refuse_where(
            ids.str.contains(CONTROL.pattern, regex=True),
            Message("TRANSACTION_ID: %(message)s", message=limits.CONTROL_MESSAGE),
        )
    _refuse_where(ids.duplicated(), TWICE)
    times = pd.to_datetime(frame["TX_DATETIME"], errors="coerce", format="ISO8601")
    _refuse_where(times.isna(), Message("TX_DATETIME is not a date-time (YYYY-MM-DD HH:MM:SS)"))
    typed = pd.DataFrame({"external_id": ids, "tx_time": to_unix_seconds(times)})
    _refuse_where(
        typed["tx_time"] < _seconds(EARLIEST),
        Message("TX_DATETIME: %(message)s", message=limits.EARLY_MESSAGE),
    )
    latest = limits.latest_time()
    _refuse_where(
        typed["tx_time"] > _seconds(latest),
        Message("TX_DATETIME: %(message)s", message=limits.future_message(latest)),
    )
    for column, name in (("CUSTOMER_ID", "customer_id"), ("TERMINAL_ID", "terminal_id")):
        typed[name] = _checked_ids(frame[column], column)
    amount = pd.to_numeric(frame["TX_AMOUNT"], errors="coerce")
    _refuse_where(
        amount.isna() | (amount < 0) | (amount > MAX_AMOUNT),
        Message("TX_AMOUNT: %(message)s", message=AMOUNT_MESSAGE),
    )
    typed["amount"] = amount.astype(np.float64)
    typed["fraud"] = _fraud_column(frame)
    return typed


def _checked_ids(values: pd.Series, column: str) -> pd.Series:
    """A column of customer or terminal ids as `limits.check_id` takes them: opaque text,
    surrounding whitespace stripped, 1 to MAX_ID characters, no control characters."""
    if _plain(values, MAX_ID):
        return values
    ids = values.str.strip()
    _refuse_where(
        (ids == "") | (ids.str.len() > MAX_ID),
        Message("%(column)s: %(message)s", column=column, message=limits.ID_MESSAGE),
    )
    _refuse_where(
        ids.str.contains(CONTROL.pattern, regex=True),
        Message("%(column)s: %(message)s", column=column, message=CONTROL_MESSAGE),
    )
    return ids


def _plain(values: pd.Series, longest: int) -> bool:
    """Whether every value is 1 to `longest` characters with no whitespace nor control characters,
    so that stripping and checking them (a Python call per value) would change and refuse nothing:
    a few scans of the values joined by line ends, C loops. False sends them to those checks, which
    name the line."""
    listed = values.tolist()
    text = "\n".join(listed)
    return (
        text.count("\n") == len(listed) - 1
        and text[:1] not in ("", "\n")  # no empty first value
        and "\n\n" not in text
        and not text.endswith("\n")
        and _SPACE.search(text) is None
        and _CONTROL.search(text) is None
        and max(map(len, listed)) <= longest
    )


_SPACE = re.compile("[^\\S\n]")  # whitespace but the line ends joining the values
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")  # CONTROL but line ends


def _seconds(naive_utc) -> int:
    return int(naive_utc.replace(tzinfo=dt.UTC).timestamp())


def _fraud_column(frame: pd.DataFrame) -> pd.Series:
    """TX_FRAUD as 1/0, or -1 where the file carries no label."""
    if "TX_FRAUD" not in frame.columns:
        return pd.Series(-1, index=frame.index, dtype=np.int64)
    raw = frame["TX_FRAUD"].str.strip()
    _refuse_where(
        ~raw.isin(["0", "1", "0.0", "1.0", ""]), Message("TX_FRAUD must be 0, 1 or empty")
    )
    return raw.map({"0": 0, "1": 1, "0.0": 0, "1.0": 1, "": -1}).astype(np.int64)


def at_line(line: int, reason: Message) -> Message:
    """A refusal naming the line of the file it is about (the header is line 1)."""
    return Message("line %(line)s: %(reason)s", line=line, reason=reason)


def _refuse_where(bad: pd.Series, reason: Message) -> None:
    """Refuse the first bad row, by its line: the frame's index counts data rows from 0."""
    if bad.any():
        row = int(bad.index[np.flatnonzero(bad.to_numpy())[0]])
        raise ImportRefused(at_line(row + 2, reason))


def import_transactions(
    source, progress: Callable[[int], None] | None = None, source_name: str = "import"
) -> ImportResult:
    """Import a Handbook-format CSV into the history in one transaction; labels become imports."""
    frame = read_transactions(source)
    return import_frame(frame, progress, source_name)


def import_handbook_frame(frame: pd.DataFrame, source_name: str) -> ImportResult:
    """Import a DataFrame in the Handbook's columns through the same checks as a file."""
    return import_frame(read_transactions_frame(frame), source_name=source_name)


def import_frame(frame: pd.DataFrame, progress=None, source_name: str = "import") -> ImportResult:
    """Merge checked rows (see `read_transactions`) into the history, all or nothing."""
    progress = progress or (lambda n: None)
    connection = db.session.connection()
    try:
        _create_staging(connection)
        _load_staging(connection, frame, progress)
        before = db.session.scalar(select(db.func.coalesce(db.func.max(Transaction.id), 0)))
        inserted = _merge(connection, source_name)
        labels = _insert_labels(connection, before)
        connection.execute(text("DROP TABLE import_staging"))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ImportResult(rows=len(frame), inserted=inserted, labels=labels)


def _create_staging(connection) -> None:
    connection.execute(text("DROP TABLE IF EXISTS import_staging"))
    connection.execute(
        text(
            "CREATE TEMPORARY TABLE import_staging (line BIGINT, external_id VARCHAR(64), "
            "tx_time BIGINT, customer_id VARCHAR(64), terminal_id VARCHAR(64), amount FLOAT, "
            "fraud INTEGER)"
        )
    )


def _load_staging(connection, frame: pd.DataFrame, progress) -> None:
    """Bulk-load the rows: COPY on PostgreSQL, executemany on SQLite."""
    columns = ["external_id", "tx_time", "customer_id", "terminal_id", "amount", "fraud"]
    raw = connection.connection.driver_connection
    cursor = raw.cursor()
    for start in range(0, len(frame), CHUNK):
        chunk = frame.iloc[start : start + CHUNK][columns]
        chunk.insert(0, "line", np.arange(start, start + len(chunk)))
        if connection.dialect.name == "postgresql":
            buffer = io.StringIO()
            chunk.to_csv(buffer, index=False, header=False)
            with cursor.copy("COPY import_staging FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(buffer.getvalue())
        else:
            cursor.executemany(
                "INSERT INTO import_staging VALUES (?, ?, ?, ?, ?, ?, ?)",
                chunk.itertuples(index=False, name=None),
            )
        progress(len(chunk))


def _merge(connection, source_name: str) -> int:
    statement = text(
        "INSERT INTO transactions (external_id, tx_time, customer_id, terminal_id, amount, fraud, "
        "label_source, source, created_at) "
        "SELECT s.external_id, s.tx_time, s.customer_id, s.terminal_id, s.amount, "
        "CASE s.fraud WHEN 1 THEN TRUE WHEN 0 THEN FALSE END, "
        "CASE WHEN s.fraud >= 0 THEN 'import' END, :source, :now "
        "FROM import_staging s WHERE NOT EXISTS "
        "(SELECT 1 FROM transactions t WHERE t.external_id = s.external_id) ORDER BY s.line"
    ).bindparams(bindparam("now", type_=DateTime(timezone=True)))
    return connection.execute(statement, {"source": source_name, "now": utcnow()}).rowcount


def _insert_labels(connection, before: int) -> int:
    """The imported labels, known at the Handbook's delay after their transaction."""
    known_at = imported_known_at(connection.dialect.name, "t.tx_time")
    statement = text(  # known_at is constant SQL, no input in it
        "INSERT INTO labels (transaction_id, fraud, source, created_at, known_at, tx_time) "  # noqa: S608
        f"SELECT t.id, t.fraud, 'import', :now, {known_at}, t.tx_time FROM transactions t "
        "JOIN import_staging s ON s.external_id = t.external_id "
        "WHERE t.id > :before AND t.fraud IS NOT NULL"
    ).bindparams(bindparam("now", type_=DateTime(timezone=True)))
    return connection.execute(statement, {"before": before, "now": utcnow()}).rowcount


def imported_known_at(dialect: str, tx_time: str) -> str:
    """SQL for when an imported label is known: its transaction's time (the Unix-seconds column
    `tx_time`) plus the Handbook's delay, as the dialect stores a UTC datetime."""
    seconds = f"({tx_time} + {IMPORT_DELAY_SECONDS})"
    if dialect == "postgresql":
        return f"to_timestamp({seconds})"
    return f"(datetime({seconds}, 'unixepoch') || '.000000')"  # SQLAlchemy's SQLite format


def load_history() -> History:
    """The whole history as numpy columns, in arrival order, labels as known now, and the labels
    given with the moment each became known (`label_events`)."""
    rows = db.session.execute(
        select(
            Transaction.tx_time,
            Transaction.customer_id,
            Transaction.terminal_id,
            Transaction.amount,
            Transaction.fraud,
        ).order_by(Transaction.id)
    ).all()
    columns = list(zip(*rows, strict=True)) if rows else [()] * 5
    label = np.array([-1 if v is None else int(v) for v in columns[4]], dtype=np.int64)
    codes = ordered_codes(columns[1], columns[2])
    return History(
        time=np.array(columns[0], dtype=np.int64),
        customer=codes.of(columns[1]),
        terminal=codes.of(columns[2]),
        amount=np.array(columns[3], dtype=float),
        label=label,
        label_events=label_events(_ALL_LABELS, {}, codes),
    )


def _label_events_statement(*conditions):
    """The labels given (imported ones aside: known at the delay, they never reach the delay
    period's features) with their transaction's terminal, customer and time, in the order given."""
    return (
        select(
            Label.transaction_id,
            Transaction.terminal_id,
            Transaction.customer_id,
            Label.tx_time,
            Label.known_at,
            Label.fraud,
            case(LABEL_PRIORITY, value=Label.source, else_=0),
        )
        .join(Transaction, Transaction.id == Label.transaction_id)
        .where(text(f"labels.{GIVEN_LABELS}"), *conditions)
        .order_by(Label.id)
    )


_ALL_LABELS = _label_events_statement()
_KNOWN = Label.known_at <= bindparam("known_end")
# The labels known by `known_end` of the transactions in (start, end): from the partial index on
# the labels given, by their transaction's time, then each one's transaction by its key ...
LABELS_IN_PERIOD = _label_events_statement(
    Label.tx_time > bindparam("start"), Label.tx_time < bindparam("end"), _KNOWN
)
# ... or those of a few terminals and customers, from their transactions' indexes.
LABELS_OF_GROUPS_IN_PERIOD = _label_events_statement(
    Transaction.tx_time > bindparam("start"),
    Transaction.tx_time < bindparam("end"),
    _KNOWN,
    or_(
        Transaction.terminal_id.in_(bindparam("terminals", expanding=True)),
        Transaction.customer_id.in_(bindparam("customers", expanding=True)),
    ),
)
FEW_GROUPS = 100  # terminals and customers: up to this many, the second query reads fewer rows


def label_events(statement, params: dict, codes: GroupCodes) -> LabelEvents:
    """The labels a `_label_events_statement` selects, as numpy columns, their terminals and
    customers by `codes`; known in whole seconds, rounded up (known by t: known_at ≤ t)."""
    # on the session's connection, as plain Core: the ORM's result layer costs more than the query
    rows = db.session.connection().execute(statement, params).all()
    columns = list(zip(*rows, strict=True)) if rows else [()] * 7
    known = [math.ceil(when.timestamp()) for when in columns[4]]
    return LabelEvents(
        np.array(columns[0], dtype=np.int64),
        codes.of(columns[1]),
        codes.of(columns[2]),
        np.array(columns[3], dtype=np.int64),
        np.array(known, dtype=np.int64),
        np.array(columns[5], dtype=np.int64),
        np.array(columns[6], dtype=np.int64),
    )


def known_end(time: int) -> dt.datetime:
    """The latest known_at of a label known by Unix second `time`."""
    return dt.datetime.fromtimestamp(time, dt.UTC)
