"""JSON API: scoring one or many, tokens, field errors, never a 500."""

import datetime as dt
import os
import threading
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from sqlalchemy import func, select

from fraudapp import register_model
from fraudapp.extensions import db
from fraudapp.ml import features
from fraudapp.models import DailyCount, Prediction, Transaction
from fraudapp.services import tokens
from fraudapp.services.serving import registry
from fraudapp.services.transactions import counts, scoring
from tests.conftest import after_history


def _tx(**overrides):
    body = {
        "tx_datetime": after_history(),
        "customer_id": 12,
        "terminal_id": 40,
        "amount": 42.5,
        "consent": True,
    }
    return body | overrides


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_scores_and_stores_with_consent(client, auth, stored_history):
    before = _count(Transaction)
    response = client.post("/api/v1/predictions", json=_tx(transaction_id="t-1"), headers=auth)
    assert response.status_code == 201
    body = response.get_json()
    assert 0 <= body["score"] <= 1 and body["model_version"] == "v1"
    assert body["is_fraud"] == (body["score"] >= body["threshold"])
    assert _count(Transaction) == before + 1
    prediction = db.session.get(Prediction, body["id"])
    assert prediction.transaction.external_id == "t-1"
    assert prediction.features["TX_AMOUNT"] == 42.5


def test_without_consent_nothing_is_stored(client, auth, stored_history):
    before = _count(Transaction)
    response = client.post("/api/v1/predictions", json=_tx(consent=False), headers=auth)
    assert response.status_code == 201 and response.get_json()["id"] is None
    assert _count(Transaction) == before and _count(Prediction) == 0


def test_the_insert_statements_are_built_once(client, auth, stored_history, monkeypatch):
    built = []
    table = Transaction.__table__
    insert = table.insert
    monkeypatch.setattr(table, "insert", lambda: built.append(1) or insert())
    for k in range(3):
        body = _tx(tx_datetime=after_history(1 + k / 1440))
        assert client.post("/api/v1/predictions", json=body, headers=auth).status_code == 201
    batch = {"transactions": [_tx(tx_datetime=after_history(1 + (5 + k) / 1440)) for k in range(3)]}
    answer = client.post("/api/v1/predictions", json=batch, headers=auth)
    assert answer.status_code == 201 and len(built) <= 2  # once for one row, once for many
    ids = [p["id"] for p in answer.get_json()["predictions"]]
    stored = [db.session.get(Prediction, i).transaction.tx_time for i in ids]
    assert ids == sorted(ids) and stored == sorted(stored)


@pytest.mark.parametrize(
    "query", ["explain=maybe", "explain=", "explain=-1", "explain=1&explain=1"]
)
def test_explain_is_yes_or_no_else_a_field_error(client, auth, query):
    response = client.post(f"/api/v1/predictions?{query}", json=_tx(), headers=auth)
    assert response.status_code == 400
    assert response.get_json() == {"errors": {"explain": ["use true or false, once"]}}
    assert _count(Transaction) == 0


@pytest.mark.parametrize(("value", "explained"), [("True", True), ("1", True), ("no", False)])
def test_explain_takes_any_case_of_true_or_false(client, auth, value, explained):
    response = client.post(f"/api/v1/predictions?explain={value}", json=_tx(), headers=auth)
    assert response.status_code == 201
    assert ("explanation" in response.get_json()) is explained


def test_explain_lists_every_feature_under_its_name(client, auth, stored_history):
    response = client.post("/api/v1/predictions?explain=true", json=_tx(), headers=auth)
    body = response.get_json()
    assert set(body["features"]) == set(features.FEATURES)
    assert body["features"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] >= 1
    assert 1 <= len(body["explanation"]) <= 4
    assert all("risk" in item["text"] for item in body["explanation"])


def test_history_changes_the_features(client, auth, stored_history):
    """The customer windows count the stored transactions before this one."""
    first = client.post(
        "/api/v1/predictions?explain=true", json=_tx(customer_id=999_999), headers=auth
    ).get_json()
    second = client.post(
        "/api/v1/predictions?explain=true", json=_tx(customer_id=999_999), headers=auth
    ).get_json()
    assert first["features"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1
    assert second["features"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 2


def test_batch_is_scored_in_order_each_seeing_the_ones_before(client, auth, stored_history):
    batch = [_tx(customer_id=777_777, amount=10.0 * (i + 1)) for i in range(5)]
    response = client.post(
        "/api/v1/predictions?explain=1", json={"transactions": batch}, headers=auth
    )
    assert response.status_code == 201
    results = response.get_json()["predictions"]
    assert [r["features"]["TX_AMOUNT"] for r in results] == [10, 20, 30, 40, 50]
    assert [r["features"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] for r in results] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": True}, "customer_id"),
        ({"customer_id": 1.5}, "customer_id"),
        ({"terminal_id": "x" * 65}, "terminal_id"),
        ({"terminal_id": "MID\n42"}, "terminal_id"),
        ({"terminal_id": 10**70}, "terminal_id"),
        ({"amount": "lots"}, "amount"),
        ({"amount": False}, "amount"),
        ({"amount": "42.5"}, "amount"),
        ({"tx_datetime": 1_600_000_000}, "tx_datetime"),
        ({"tx_datetime": "1600000000"}, "tx_datetime"),
        ({"tx_datetime": True}, "tx_datetime"),
        ({"amount": -3}, "amount"),
        ({"tx_datetime": "yesterday"}, "tx_datetime"),
        ({"tx_datetime": "1800-01-01T00:00:00"}, "tx_datetime"),
        ({"consent": "yes"}, "consent"),
        ({"transaction_id": ""}, "transaction_id"),
    ],
)
def test_bad_fields_are_400_with_field_errors(client, auth, body, field):
    response = client.post("/api/v1/predictions", json=_tx(**body), headers=auth)
    assert response.status_code == 400
    assert field in response.get_json()["errors"]
    assert _count(Transaction) == 0


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1, 2]", b"null", b'{"transactions": []}', b'{"transactions": 5}', b"{}"],
)
def test_malformed_bodies_are_400(client, auth, payload):
    response = client.post(
        "/api/v1/predictions", data=payload, headers=auth, content_type="application/json"
    )
    assert response.status_code == 400 and "errors" in response.get_json()


def test_batch_errors_name_the_item_and_store_nothing(client, auth):
    batch = [_tx(), _tx(amount="x")]
    response = client.post("/api/v1/predictions", json={"transactions": batch}, headers=auth)
    assert response.status_code == 400
    assert "transactions.1.amount" in response.get_json()["errors"]
    assert _count(Transaction) == 0


def test_batch_over_the_limit_is_refused(client, auth):
    response = client.post(
        "/api/v1/predictions", json={"transactions": [_tx()] * 1001}, headers=auth
    )
    assert response.status_code == 400 and "transactions" in response.get_json()["errors"]


def _bearer(name: str) -> dict:
    return {"Authorization": f"Bearer {tokens.create_token(name)}"}


ANSWER = ("id", "score", "is_fraud", "threshold", "model_version")


def test_a_resent_transaction_id_returns_the_stored_prediction(client, auth, stored_history):
    first = client.post(
        "/api/v1/predictions?explain=1", json=_tx(transaction_id="r-1"), headers=auth
    )
    assert first.status_code == 201 and first.get_json()["replayed"] is False
    counts.flush()
    counted = db.session.scalar(select(func.sum(DailyCount.count)))
    again = client.post(
        "/api/v1/predictions?explain=1", json=_tx(transaction_id="r-1"), headers=auth
    )
    assert again.status_code == 200
    first, again = first.get_json(), again.get_json()
    assert [again[key] for key in ANSWER] == [first[key] for key in ANSWER]
    assert again["replayed"] is True and again["features"] == first["features"]
    assert again["explanation"] == first["explanation"]
    assert _count(Transaction) == len(stored_history) + 1 and _count(Prediction) == 1
    assert counts.flush() == 0  # a replay is not counted again
    assert db.session.scalar(select(func.sum(DailyCount.count))) == counted


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 9.0},
        {"customer_id": 13},
        {"terminal_id": 41},
        {"tx_datetime": after_history(days=2)},
    ],
)
def test_a_transaction_id_with_other_details_is_409(client, auth, stored_history, change):
    stored = client.post("/api/v1/predictions", json=_tx(transaction_id="dup"), headers=auth)
    response = client.post(
        "/api/v1/predictions", json=_tx(transaction_id="dup", **change), headers=auth
    )
    assert response.status_code == 409
    assert set(response.get_json()) == {"errors"}
    assert list(response.get_json()["errors"]) == ["transaction_id"]
    transaction = db.session.scalar(select(Transaction).where(Transaction.external_id == "dup"))
    assert (transaction.amount, transaction.customer_id) == (42.5, "12")
    assert _count(Prediction) == 1 and stored.get_json()["id"] is not None


def test_a_transaction_id_stored_by_another_token_is_409_without_its_prediction(
    client, auth, stored_history
):
    client.post("/api/v1/predictions", json=_tx(transaction_id="mine"), headers=auth)
    response = client.post(
        "/api/v1/predictions", json=_tx(transaction_id="mine"), headers=_bearer("other")
    )
    assert response.status_code == 409
    assert response.get_json() == {
        "errors": {"transaction_id": ["another transaction with this id is already stored"]}
    }
    imported = stored_history["TRANSACTION_ID"].iloc[0]  # imported, never scored
    response = client.post(
        "/api/v1/predictions", json=_tx(transaction_id=str(imported)), headers=auth
    )
    assert response.status_code == 409 and _count(Prediction) == 1


def test_a_batch_answers_stored_ids_from_storage_and_scores_the_others(
    client, auth, stored_history
):
    stored = client.post("/api/v1/predictions", json=_tx(transaction_id="b-0"), headers=auth)
    batch = [_tx(transaction_id="b-0"), _tx(transaction_id="b-1", amount=7.0), _tx()]
    response = client.post("/api/v1/predictions", json={"transactions": batch}, headers=auth)
    assert response.status_code == 201
    results = response.get_json()["predictions"]
    assert [r["replayed"] for r in results] == [True, False, False]
    assert results[0]["id"] == stored.get_json()["id"]
    assert results[0]["score"] == stored.get_json()["score"]
    assert _count(Prediction) == 3
    again = client.post("/api/v1/predictions", json={"transactions": batch[:2]}, headers=auth)
    assert again.status_code == 200
    assert [r["id"] for r in again.get_json()["predictions"]] == [r["id"] for r in results[:2]]
    twice = [_tx(transaction_id="b-2"), _tx(transaction_id="b-2")]  # the same id in one batch
    response = client.post("/api/v1/predictions", json={"transactions": twice}, headers=auth)
    first, second = response.get_json()["predictions"]
    assert (first["replayed"], second["replayed"]) == (False, True)
    assert first["id"] == second["id"] and _count(Prediction) == 4


def test_a_conflict_in_a_batch_names_the_item_and_stores_nothing(client, auth, stored_history):
    client.post("/api/v1/predictions", json=_tx(transaction_id="c-0"), headers=auth)
    batch = [_tx(transaction_id="c-1"), _tx(transaction_id="c-0", amount=1.0)]
    response = client.post("/api/v1/predictions", json={"transactions": batch}, headers=auth)
    assert response.status_code == 409
    assert list(response.get_json()["errors"]) == ["transactions.1.transaction_id"]
    assert _count(Prediction) == 1
    assert db.session.scalar(select(Transaction).where(Transaction.external_id == "c-1")) is None


def test_two_identical_requests_at_once_store_one_prediction(
    app, client, auth, stored_history, monkeypatch
):
    """The other request stores the transaction between this one's look-up and its insert: the
    unique index refuses this one's insert, and it answers with the stored prediction."""
    look_up = scoring._stored_answers
    other = {}

    def racing(*args):
        if not other:  # this request saw nothing stored; now the other one stores it
            other["response"] = None
            thread = threading.Thread(target=send, args=(other,))
            thread.start()
            thread.join()
            return {}
        return look_up(*args)

    def send(into: dict) -> None:
        into["response"] = app.test_client().post(
            "/api/v1/predictions", json=_tx(transaction_id="race"), headers=auth
        )

    monkeypatch.setattr(scoring, "_stored_answers", racing)
    mine = client.post("/api/v1/predictions", json=_tx(transaction_id="race"), headers=auth)
    theirs = other["response"]
    assert (theirs.status_code, mine.status_code) == (201, 200)
    assert mine.get_json()["id"] == theirs.get_json()["id"]
    assert mine.get_json()["score"] == theirs.get_json()["score"]
    assert _count(Prediction) == 1


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}]
)
def test_missing_or_bad_token_is_401(client, headers):
    response = client.post("/api/v1/predictions", json=_tx(), headers=headers)
    assert response.status_code == 401
    assert client.get("/api/v1/model", headers=headers).status_code == 401


def test_model_endpoint_describes_the_serving_version(client, auth):
    body = client.get("/api/v1/model", headers=auth).get_json()
    assert body["version"] == "v1"
    assert body["meta"]["features"] == list(features.FEATURES)


def test_no_model_is_503_not_500(app, client, auth):
    Path(app.config["MODEL_DIR"], "CURRENT").unlink()
    response = client.post("/api/v1/predictions", json=_tx(), headers=auth)
    assert response.status_code == 503
    assert client.get("/healthz").status_code == 503


def test_healthz_names_the_version_and_worker(client):
    body = client.get("/healthz").get_json()
    assert body == {"status": "ok", "model_version": "v1", "role": "all", "worker": os.getpid()}


def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/v1/nothing")
    assert response.status_code == 404 and response.get_json()["error"] == "Not Found"


def _future(**delta) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(**delta)).isoformat()


def test_a_transaction_in_the_future_is_refused_with_the_field_named(client, auth):
    for value in (_future(days=1), "2099-12-31T00:00:00", "9999-12-31T23:59:59-01:00"):
        response = client.post("/api/v1/predictions", json=_tx(tx_datetime=value), headers=auth)
        assert response.status_code == 400
        assert "in the future" in response.get_json()["errors"]["tx_datetime"][0]
    batch = {"transactions": [_tx(), _tx(tx_datetime=_future(hours=1))]}
    response = client.post("/api/v1/predictions", json=batch, headers=auth)
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == ["transactions.1.tx_datetime"]
    assert _count(Transaction) == 0


def test_a_transaction_within_the_clock_skew_allowance_is_scored(client, auth, app):
    response = client.post(
        "/api/v1/predictions", json=_tx(tx_datetime=_future(seconds=60)), headers=auth
    )
    assert response.status_code == 201
    app.config["CLOCK_SKEW_SECONDS"] = 0
    response = client.post(
        "/api/v1/predictions", json=_tx(tx_datetime=_future(seconds=60)), headers=auth
    )
    assert response.status_code == 400


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "1989-12-31T23:59:59Z"])
def test_times_before_1990_are_refused_even_at_the_calendars_edge(client, auth, value):
    response = client.post("/api/v1/predictions", json=_tx(tx_datetime=value), headers=auth)
    assert response.status_code == 400
    assert "from 1990" in response.get_json()["errors"]["tx_datetime"][0]


@pytest.mark.parametrize("value", ["a\u0000b", "line\nbreak", "\ud800", "tab\there", "\x7f"])
def test_control_characters_in_a_transaction_id_are_a_field_error(client, auth, value):
    response = client.post("/api/v1/predictions", json=_tx(transaction_id=value), headers=auth)
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == ["transaction_id"]  # a surrogate: not a string
    assert _count(Transaction) == 0


@pytest.mark.parametrize("ident", ["9223372036854775808", "9" * 30, "9" * 5000])
def test_feedback_on_an_id_no_row_can_have_is_404(client, auth, ident):
    response = client.post(
        f"/api/v1/predictions/{ident}/feedback", json={"correct": True}, headers=auth
    )
    assert response.status_code == 404


def test_a_version_trained_before_features_were_added_keeps_serving(
    app, client, auth, stored_history
):
    """A released version declaring fewer features than this code computes scores on its own
    columns: the API's features, explanation, stored snapshot and replay name only them."""
    older = features.HANDBOOK_FEATURES + features.EXTRA_FEATURES
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, len(older)))
    data = lgb.Dataset(x, label=(x[:, 0] > 0.5).astype(int), feature_name=list(older))
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1}, data, 5)
    reg = registry()
    reg.set_current(reg.publish(booster, {"features": list(older), "threshold": 0.5}))
    register_model(app)  # the worker follows the pointer
    first = client.post(
        "/api/v1/predictions?explain=1", json=_tx(transaction_id="o-1"), headers=auth
    )
    body = first.get_json()
    assert first.status_code == 201 and body["model_version"] == "v2"
    assert set(body["features"]) == set(older)
    assert {item["feature"] for item in body["explanation"]} <= set(older)
    assert set(db.session.get(Prediction, body["id"]).features) == set(older)
    again = client.post(
        "/api/v1/predictions?explain=1", json=_tx(transaction_id="o-1"), headers=auth
    )
    assert again.get_json()["explanation"] == body["explanation"]
