"""Scoring a whole file (provisional, simple version: one row at a time through the online
scorer; the fast engine replaces it with the same interface)."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from flask import current_app
from sqlalchemy import select

from ...extensions import db
from ...ml.explain import explain
from ...models import Transaction
from ..serving import decision_threshold, serving_model
from . import scoring
from .history import ImportRefused, read_transactions

COLUMNS = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "score",
    "is_fraud",
    "threshold",
    "model_version",
    "reasons",
)
CHUNK = 500


class FileRefused(Exception):
    """The file cannot be scored; nothing was written or stored. str(exc) names the line and the
    reason, e.g. 'line 7: TX_AMOUNT: ...' (header is line 1)."""


@dataclass
class FileSummary:
    """What scoring a file found."""

    rows: int
    flagged: int
    threshold: float
    model_version: str
    stored: int  # rows that joined the history (0 without store)
    histogram: list[int] = field(default_factory=lambda: [0] * 10)


def score_file(
    source, out, store: bool = False, progress: Callable[[int, int], None] | None = None
) -> FileSummary:
    """Score a Handbook-format CSV in time order into `out` (written whole or not at all); with
    `store` the rows join the history like consented predictions."""
    try:
        frame = read_transactions(source)
    except ImportRefused as exc:
        raise FileRefused(str(exc)) from exc
    if store:
        _refuse_known_ids(frame)
    frame = frame.sort_values("tx_time", kind="stable")
    model = serving_model()
    summary = FileSummary(len(frame), 0, decision_threshold(model), model.version, 0)
    temporary = f"{out}.partial"
    opener = gzip.open if str(out).endswith(".gz") else open
    try:
        with opener(temporary, "wt", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for start in range(0, len(frame), CHUNK):
                _score_chunk(frame.iloc[start : start + CHUNK], store, model, writer, summary)
                if progress:
                    progress(min(start + CHUNK, len(frame)), len(frame))
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return summary


def _refuse_known_ids(frame) -> None:
    ids = frame["external_id"].tolist()
    for start in range(0, len(ids), 1000):
        known = set(
            db.session.scalars(
                select(Transaction.external_id).where(
                    Transaction.external_id.in_(ids[start : start + 1000])
                )
            )
        )
        if known:
            line = next(i for i, value in enumerate(ids) if value in known) + 2
            raise FileRefused(f"line {line}: TRANSACTION_ID is already in the history")


def _score_chunk(chunk, store: bool, model, writer, summary: FileSummary) -> None:
    ids = chunk["external_id"].tolist()
    items = [
        (
            scoring.TransactionIn(
                tx_datetime=dt.datetime.fromtimestamp(int(row.tx_time), dt.UTC).replace(
                    tzinfo=None
                ),
                customer_id=int(row.customer_id),
                terminal_id=int(row.terminal_id),
                amount=float(row.amount),
                external_id=row.external_id if store else None,
            ),
            store,
        )
        for row in chunk.itertuples()
    ]
    results = scoring.score_batch(items, want_explanation=False)
    top = current_app.config["EXPLAIN_TOP"]
    for external_id, (tx, _), result in zip(ids, items, results, strict=True):
        row = np.array(list(result.features.values()), dtype=np.float64)
        reasons = "; ".join(reason["text"] for reason in explain(model, row, top))
        writer.writerow(
            [
                external_id,
                tx.tx_datetime.isoformat(sep=" "),
                tx.customer_id,
                tx.terminal_id,
                tx.amount,
                f"{result.score:.6f}",
                int(result.is_fraud),
                result.threshold,
                result.model_version,
                reasons,
            ]
        )
        summary.flagged += int(result.is_fraud)
        summary.stored += int(result.id is not None)
        summary.histogram[min(int(result.score * 10), 9)] += 1
