"""Labels flow back: into later transactions' terminal risk and into the next training set."""

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import select

from fraudapp.extensions import db
from fraudapp.ml import features
from fraudapp.ml.features import DAY, KNOWN_FRAUD_FEATURES
from fraudapp.ml.training import Windows, split
from fraudapp.models import Label, Prediction, Transaction
from fraudapp.services.transactions import labels, scoring
from fraudapp.services.transactions.history import load_history
from tests.conftest import after_history, predict

TERMINAL = 987_654  # a terminal with no history of its own


def _terminal_risk(client, auth, when: str) -> float:
    body = client.post(
        "/api/v1/predictions?explain=true",
        headers=auth,
        json={
            "tx_datetime": when,
            "customer_id": 5,
            "terminal_id": TERMINAL,
            "amount": 20.0,
            "consent": False,
        },
    ).get_json()
    return body["features"]["TERMINAL_ID_RISK_1DAY_WINDOW"], body["features"][
        "TERMINAL_ID_NB_TX_1DAY_WINDOW"
    ]


def test_feedback_label_reaches_later_terminal_risk_and_training(client, auth, stored_history):
    first_time = dt.datetime.fromisoformat(after_history())
    first = predict(client, auth, terminal_id=TERMINAL, tx_datetime=first_time.isoformat())
    later = (first_time + dt.timedelta(days=7, hours=12)).isoformat()
    assert _terminal_risk(client, auth, later) == (0.0, 1)  # seen, unlabelled = genuine

    history = load_history()
    assert history.label[-1] == -1  # not labelled: stays out of training

    client.post(
        f"/api/v1/predictions/{first['id']}/feedback", json={"label": "fraud"}, headers=auth
    )
    assert _terminal_risk(client, auth, later) == (1.0, 1)
    # still inside the label delay: a transaction 6 days later cannot see the label yet
    sooner = (first_time + dt.timedelta(days=6)).isoformat()
    assert _terminal_risk(client, auth, sooner) == (0.0, 0)

    history = load_history()
    assert history.label[-1] == 1
    train, _ = split(history, Windows(first_time.date(), train_days=1, delay_days=0, test_days=1))
    assert len(history) - 1 in set(train.tolist())


def test_a_label_is_known_when_given_or_at_the_time_a_replay_passes(client, auth, stored_history):
    first = predict(client, auth, terminal_id=TERMINAL, tx_datetime=after_history())
    second = predict(client, auth, terminal_id=TERMINAL, tx_datetime=after_history())
    before = dt.datetime.now(dt.UTC)
    labels.give_feedback(first["id"], "test", label="fraud")
    assert before <= _known_at(first) <= dt.datetime.now(dt.UTC)
    simulated = dt.datetime(2018, 9, 3, 12, tzinfo=dt.UTC)
    labels.give_feedback(first["id"], "test", label="genuine", at=simulated)
    labels.label_by_analyst([second["id"]], True, "analyst", at=simulated + dt.timedelta(hours=1))
    assert _known_at(first) == simulated
    assert _known_at(second) == simulated + dt.timedelta(hours=1)


def _known_at(prediction: dict) -> dt.datetime:
    """When the latest label of the prediction's transaction became known."""
    transaction_id = db.session.get(Prediction, prediction["id"]).transaction_id
    return db.session.scalars(
        select(Label.known_at).where(Label.transaction_id == transaction_id).order_by(Label.id)
    ).all()[-1]


def test_a_label_given_after_a_transaction_changes_neither_its_served_nor_training_features(
    app, stored_history
):
    """No leakage: feedback, and corrections, known after a transaction was scored leave both the
    features it was scored with and its training features as they were; later ones see them."""
    end = pd.Timestamp(stored_history["TX_DATETIME"].max())
    week = stored_history[stored_history["TX_DATETIME"] > str(end - pd.Timedelta(days=6))]
    terminal = int(week["TERMINAL_ID"].value_counts().index[0])
    ids = db.session.scalars(
        select(Transaction.id)
        .where(
            Transaction.terminal_id == str(terminal), Transaction.tx_time > _seconds(end) - 6 * DAY
        )
        .order_by(Transaction.id)
    ).all()
    assert len(ids) >= 3
    when = end.to_pydatetime() + dt.timedelta(hours=1)
    labels.add_label(ids[0], True, "feedback", "user", at=_utc(when) - dt.timedelta(hours=2))
    db.session.commit()
    first = scoring.score(_at(when, terminal), consent=True)
    name = KNOWN_FRAUD_FEATURES[0]
    assert first.features[name] == 1.0

    after = _utc(when) + dt.timedelta(minutes=30)
    labels.add_label(ids[0], False, "analyst", "analyst", at=after)  # a correction ...
    labels.add_label(ids[1], True, "feedback", "user", at=after)  # ... and new frauds
    labels.add_label(ids[2], True, "feedback", "user", at=after)
    db.session.commit()
    history = load_history()
    training = dict(zip(features.FEATURES, history.features()[-1].tolist(), strict=True))
    stored = db.session.get(Prediction, first.id).features
    assert {k: training[k] for k in stored} == pytest.approx(stored, rel=1e-9, abs=1e-9)
    assert training[name] == 1.0
    later = scoring.score(_at(when + dt.timedelta(hours=1), terminal), consent=False)
    assert later.features[name] == 2.0


def _at(when: dt.datetime, terminal: int) -> scoring.TransactionIn:
    return scoring.TransactionIn(when.replace(tzinfo=None), 5, terminal, 20.0)


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.UTC)


def _seconds(when: pd.Timestamp) -> int:
    return int(when.tz_localize("UTC").timestamp())
