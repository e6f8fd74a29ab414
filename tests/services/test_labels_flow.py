"""Labels flow back: into later transactions' terminal risk and into the next training set."""

import datetime as dt

from sqlalchemy import select

from fraudapp.extensions import db
from fraudapp.ml.training import Windows, split
from fraudapp.models import Label, Prediction
from fraudapp.services.transactions import labels
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
