"""A list scored at once gives exactly what scoring its transactions one by one gives."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, func, select

from fraudapp.extensions import db
from fraudapp.ml.features import KNOWN_FRAUD_FEATURES
from fraudapp.models import DailyCount, DirtyDay, Prediction, Transaction
from fraudapp.services.transactions import files, history, labels, scoring
from tests.conftest import HANDBOOK_RAW, handbook_file

LIST_SIZE = 1_000  # the API's largest list


def _inputs(frame: pd.DataFrame, consent: np.ndarray) -> list[tuple[scoring.TransactionIn, bool]]:
    return [
        (
            scoring.TransactionIn(
                dt.datetime.fromisoformat(str(row.TX_DATETIME)),
                int(row.CUSTOMER_ID),
                int(row.TERMINAL_ID),
                float(row.TX_AMOUNT),
            ),
            bool(given),
        )
        for row, given in zip(frame.itertuples(), consent, strict=True)
    ]


def _one_by_one_then_batched(items) -> tuple[list[scoring.Scored], list[scoring.Scored]]:
    """Score the items one request each, forget what that stored, then score them in lists."""
    last_stored = db.session.scalar(select(func.max(Transaction.id)))
    alone = [scoring.score(tx, consent) for tx, consent in items]
    _forget_after(last_stored)
    return alone, _in_lists(items)


def _in_lists(items) -> list[scoring.Scored]:
    batched = []
    for start in range(0, len(items), LIST_SIZE):
        batched += scoring.score_batch(items[start : start + LIST_SIZE], want_explanation=False)
    return batched


def _forget_after(last_stored: int) -> None:
    """Delete what scoring stored after the history."""
    for table in (Prediction, DailyCount, DirtyDay):
        db.session.execute(delete(table))
    db.session.execute(delete(Transaction).where(Transaction.id > last_stored))
    db.session.commit()


def _assert_same(alone, batched) -> None:
    assert len(alone) == len(batched)
    for one, many in zip(alone, batched, strict=True):
        np.testing.assert_allclose(
            list(many.features.values()), list(one.features.values()), rtol=0, atol=1e-9
        )
        assert abs(many.score - one.score) <= 1e-9
        assert many.is_fraud == one.is_fraud and (many.id is None) == (one.id is None)
    stored = sum(one.id is not None for one in alone)
    assert db.session.scalar(select(func.count()).select_from(Prediction)) == stored


@pytest.mark.slow
@pytest.mark.handbook
def test_handbook_lists_and_files_equal_one_by_one(app, tmp_path):
    """≥ 10,000 Handbook transactions of 400 customers after a month of stored history, in lists
    of 1,000 spanning more than the terminal delay: customers and terminals repeat inside a list,
    and half the transactions are stored (consent) — features and scores equal to 1e-9. The same
    transactions as a file score as lists of them all with consent (each sees the earlier ones)."""
    frame = pd.read_csv(handbook_file(HANDBOOK_RAW), nrows=560_000)
    stored = frame[frame["TX_DATETIME"] < "2018-05-01"]
    history.import_frame(history.read_transactions_frame(stored))
    history_end = db.session.scalar(select(func.max(Transaction.id)))
    later = frame.iloc[len(stored) :]
    new = later[later["CUSTOMER_ID"] < 400].head(11_000)
    assert len(new) == 11_000
    in_lists = [new.iloc[s : s + LIST_SIZE] for s in range(0, len(new), LIST_SIZE)]
    assert all(part["CUSTOMER_ID"].duplicated().sum() > 300 for part in in_lists)
    assert all(part["TERMINAL_ID"].duplicated().sum() > 50 for part in in_lists)
    consent = np.random.default_rng(0).random(len(new)) < 0.5
    alone, batched = _one_by_one_then_batched(_inputs(new, consent))
    _assert_same(alone, batched)

    _forget_after(history_end)
    new.to_csv(tmp_path / "new.csv.gz", index=False)
    files.score_file(tmp_path / "new.csv.gz", tmp_path / "scored.csv")
    scored = pd.read_csv(tmp_path / "scored.csv")
    everyone = _in_lists(_inputs(new, np.ones(len(new), bool)))
    np.testing.assert_allclose(scored["score"], [r.score for r in everyone], rtol=0, atol=1e-9)


def test_a_list_out_of_time_order_equals_one_by_one(app, stored_history):
    """Each transaction sees only those before it in the list, even when a later one is earlier
    in time: the list is scored stretch by time-ordered stretch."""
    start = pd.Timestamp(stored_history["TX_DATETIME"].max())
    rng = np.random.default_rng(2)
    n = 300
    frame = pd.DataFrame(
        {
            "TX_DATETIME": start + pd.to_timedelta(rng.integers(0, 10 * 86_400, n), unit="s"),
            "CUSTOMER_ID": rng.choice(stored_history["CUSTOMER_ID"].unique()[:20], n),
            "TERMINAL_ID": rng.choice(stored_history["TERMINAL_ID"].unique()[:20], n),
            "TX_AMOUNT": rng.gamma(2.0, 30.0, n).round(2),
        }
    )
    assert not frame["TX_DATETIME"].is_monotonic_increasing
    items = _inputs(frame, rng.random(n) < 0.7)
    alone, batched = _one_by_one_then_batched(items)
    _assert_same(alone, batched)
    for (tx, _), result in zip(items, batched, strict=True):  # each id is its own transaction's
        if result.id is not None:
            prediction = db.session.get(Prediction, result.id)
            assert prediction.score == result.score
            stored = prediction.transaction
            assert (stored.tx_time, stored.amount) == (tx.tx_time, tx.amount)


def _label_the_last_week(start: pd.Timestamp, rng) -> None:
    """Feedback on half the stored transactions of the week before `start`, a third of it fraud,
    known at times from 2 days before `start` to 5 days after it (inside the list's stretch); an
    analyst corrects a fifth of it a day later."""
    first = int((start - pd.Timedelta(days=7)).timestamp())
    stored = db.session.scalars(select(Transaction.id).where(Transaction.tx_time > first)).all()
    for transaction_id in stored:
        if rng.random() < 0.5:
            at = start.to_pydatetime().replace(tzinfo=dt.UTC) + dt.timedelta(
                seconds=int(rng.integers(-2 * 86_400, 5 * 86_400))
            )
            fraud = bool(rng.random() < 1 / 3)
            labels.add_label(transaction_id, fraud, "feedback", "test", at=at)
            if rng.random() < 0.2:
                later = at + dt.timedelta(days=1)
                labels.add_label(transaction_id, not fraud, "analyst", "test", at=later)
    db.session.commit()


def _known(results) -> np.ndarray:
    return np.array([[r.features[name] for name in KNOWN_FRAUD_FEATURES] for r in results])


def test_labels_known_at_various_times_count_alike_one_by_one_in_lists_and_files(
    app, stored_history, tmp_path
):
    """Labels becoming known before and during the stretch of a list: one by one, in lists and
    as a file, each transaction counts the frauds known at its own time."""
    start = pd.Timestamp(stored_history["TX_DATETIME"].max())
    rng = np.random.default_rng(8)
    recent = stored_history[stored_history["TX_DATETIME"] > str(start - pd.Timedelta(days=3))]
    n = 400
    frame = pd.DataFrame(
        {
            "TRANSACTION_ID": [f"f{k}" for k in range(n)],
            "TX_DATETIME": start + pd.to_timedelta(np.sort(rng.integers(0, 6 * 86_400, n)), "s"),
            # more customers and terminals than history.FEW_GROUPS: lists read their labels as
            # files do, single requests through their groups' indexes
            "CUSTOMER_ID": rng.choice(recent["CUSTOMER_ID"].unique()[:60], n),
            "TERMINAL_ID": rng.choice(recent["TERMINAL_ID"].unique()[:60], n),
            "TX_AMOUNT": rng.gamma(2.0, 30.0, n).round(2),
        }
    )
    _label_the_last_week(start, rng)
    assert frame["CUSTOMER_ID"].nunique() + frame["TERMINAL_ID"].nunique() > history.FEW_GROUPS
    history_end = db.session.scalar(select(func.max(Transaction.id)))
    alone, batched = _one_by_one_then_batched(_inputs(frame, rng.random(n) < 0.7))
    _assert_same(alone, batched)
    known = _known(batched)
    assert (known > 0).mean(axis=0).min() > 0.1 and len(np.unique(known[:, 0])) > 2

    _forget_after(history_end)
    everyone = _known(_in_lists(_inputs(frame, np.ones(n, bool))))
    _forget_after(history_end)
    frame.to_csv(tmp_path / "new.csv", index=False)
    files.score_file(tmp_path / "new.csv", tmp_path / "scored.csv", store=True)
    stored = db.session.scalars(
        select(Prediction.features)
        .join(Prediction.transaction)
        .order_by(Transaction.tx_time, Transaction.id)
    ).all()
    as_file = np.array([[f[name] for name in KNOWN_FRAUD_FEATURES] for f in stored])
    np.testing.assert_array_equal(as_file, everyone)
