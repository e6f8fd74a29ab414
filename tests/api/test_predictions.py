"""JSON API: scoring one or many, tokens, field errors, never a 500."""

import datetime as dt
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fraudapp.extensions import db
from fraudapp.ml import features
from fraudapp.models import Prediction, Transaction
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
        ({"customer_id": -1}, "customer_id"),
        ({"customer_id": "12"}, "customer_id"),
        ({"terminal_id": 2**40}, "terminal_id"),
        ({"amount": "lots"}, "amount"),
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


def test_duplicate_transaction_id_is_400_and_keeps_the_first(client, auth, stored_history):
    client.post("/api/v1/predictions", json=_tx(transaction_id="dup"), headers=auth)
    response = client.post(
        "/api/v1/predictions", json=_tx(transaction_id="dup", amount=9.0), headers=auth
    )
    assert response.status_code == 400 and "transaction_id" in response.get_json()["errors"]
    stored = db.session.scalar(select(Transaction).where(Transaction.external_id == "dup"))
    assert stored.amount == 42.5


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
