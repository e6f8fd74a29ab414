"""Feedback from the submitter, receipts and deletion, and the analysts' review queue."""

import datetime as dt

import pytest
from sqlalchemy import delete, func, select

from fraudapp.extensions import db
from fraudapp.models import ApiToken, AuditEvent, DailyCount, Label, Prediction, Transaction
from fraudapp.services import tokens
from fraudapp.services.transactions import counts, labels
from tests.conftest import after_history, login, predict


def _submit_form(client, consent=True):
    data = {
        "tx_datetime": after_history()[:16],
        "customer_id": "12",
        "terminal_id": "40",
        "amount": "42.50",
    }
    if consent:
        data["consent"] = "y"
    client.post("/", data=data)
    return client.get("/result").text


def _receipt(page: str) -> str:
    return page.split('id="receipt">')[1].split("<")[0]


def test_result_page_asks_for_feedback_only_with_consent(client, stored_history):
    page = _submit_form(client)
    assert "Was this right?" in page and _receipt(page)
    page = _submit_form(client, consent=False)
    assert "Was this right?" not in page and "nothing to give feedback on" in page


def test_wrong_on_a_decision_records_the_opposite_label_and_answers_can_change(
    client, stored_history
):
    code = _receipt(_submit_form(client))
    prediction = db.session.scalar(select(Prediction))
    client.post(f"/my-data/{code}/feedback", data={"wrong": "Wrong"})
    db.session.expire_all()
    assert prediction.transaction.fraud is (not prediction.is_fraud)
    assert prediction.transaction.label_source == "feedback"
    client.post(f"/my-data/{code}/feedback", data={"correct": "Correct"})
    db.session.expire_all()
    assert prediction.transaction.fraud is prediction.is_fraud
    answers = db.session.scalars(select(Label).where(Label.source == "feedback")).all()
    assert len(answers) == 2 and answers[0].actor.startswith("session:")
    page = client.get(f"/my-data/{code}").text
    assert page.count("<li>") >= 2 and "wrong" in page and "correct" in page


def test_my_data_shows_and_deletes_everything_but_counts(client, stored_history):
    code = _receipt(_submit_form(client))
    page = client.get(f"/my-data/{code}").text
    assert "42.50" in page and "TX_AMOUNT" in page
    client.post(f"/my-data/{code}/feedback", data={"wrong": "Wrong"})
    before = db.session.scalar(select(func.count()).select_from(Transaction))
    response = client.post(f"/my-data/{code}/delete")
    assert response.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(Prediction)) == 0
    assert db.session.scalar(select(func.count()).select_from(Transaction)) == before - 1
    assert (
        db.session.scalar(select(func.count()).select_from(Label).where(Label.source == "feedback"))
        == 0
    )
    counts.flush()
    assert db.session.scalar(select(func.sum(DailyCount.count))) == 1
    assert (
        db.session.scalar(select(AuditEvent.action).where(AuditEvent.action == "data.deleted"))
        == "data.deleted"
    )
    assert client.get(f"/my-data/{code}").status_code == 404


def test_unknown_receipt_is_404(client):
    assert client.get("/my-data/not-a-code").status_code == 404
    assert client.post("/my-data/not-a-code/delete").status_code == 404


def test_api_feedback(client, auth, stored_history):
    body = predict(client, auth)
    url = f"/api/v1/predictions/{body['id']}/feedback"
    response = client.post(url, json={"correct": False}, headers=auth)
    assert response.status_code == 201
    assert response.get_json()["label"] == ("genuine" if body["is_fraud"] else "fraud")
    assert client.post(url, json={"label": "fraud"}, headers=auth).get_json()["label"] == "fraud"
    transaction = db.session.get(Prediction, body["id"]).transaction
    assert transaction.fraud is True
    for bad in ({}, {"correct": "yes"}, {"label": "maybe"}, {"correct": True, "label": "fraud"}):
        assert client.post(url, json=bad, headers=auth).status_code == 400
    assert (
        client.post(
            "/api/v1/predictions/999999/feedback", json={"correct": True}, headers=auth
        ).status_code
        == 404
    )
    assert client.post(url, json={"correct": True}).status_code == 401


def _feedback_labels() -> int:
    return db.session.scalar(
        select(func.count()).select_from(Label).where(Label.source == "feedback")
    )


def _feedback(client, prediction_id, headers) -> int:
    url = f"/api/v1/predictions/{prediction_id}/feedback"
    return client.post(url, json={"label": "fraud"}, headers=headers).status_code


def test_a_token_gives_feedback_only_on_its_own_predictions(client, auth, stored_history):
    mine = predict(client, auth)["id"]
    _submit_form(client)  # a prediction from the web form: no token
    from_form = db.session.scalar(select(Prediction.id).where(Prediction.id != mine))
    other = {"Authorization": f"Bearer {tokens.create_token('other')}"}
    every = {"Authorization": f"Bearer {tokens.create_token('auditor', 'all')}"}
    assert db.session.get(Prediction, mine).api_token_id == db.session.scalar(
        select(ApiToken.id).where(ApiToken.name == "tests")
    )
    assert db.session.get(Prediction, from_form).api_token_id is None

    assert _feedback(client, mine, other) == 404  # as if it did not exist
    assert _feedback(client, from_form, other) == 404
    assert _feedback(client, from_form, auth) == 404
    assert _feedback_labels() == 0
    assert _feedback(client, mine, auth) == 201
    assert _feedback(client, mine, every) == 201
    assert _feedback(client, from_form, every) == 201
    assert _feedback_labels() == 3


def test_a_deleted_token_leaves_its_predictions_to_all_scope_tokens(client, auth, stored_history):
    mine = predict(client, auth)["id"]
    db.session.execute(delete(ApiToken).where(ApiToken.name == "tests"))
    db.session.commit()
    assert db.session.get(Prediction, mine).api_token_id is None
    every = {"Authorization": f"Bearer {tokens.create_token('auditor', 'all')}"}
    assert _feedback(client, mine, every) == 201


@pytest.mark.parametrize("prediction_id", [2**63 - 1, 2**63, 2**64, 10**30])
def test_feedback_on_an_id_beyond_the_database_range_is_404(client, auth, prediction_id):
    response = client.post(
        f"/api/v1/predictions/{prediction_id}/feedback", json={"correct": True}, headers=auth
    )
    assert response.status_code == 404 and response.get_json()["error"] == "Not Found"
    with pytest.raises(labels.NotFound):
        labels.give_feedback(prediction_id, "test", correct=True)


def test_analyst_label_outranks_feedback(client, auth, users, stored_history):
    body = predict(client, auth)
    login(client, "analyst")
    client.post("/review/label", data={"row": f"{body['id']}:fraud"})
    client.post(
        f"/api/v1/predictions/{body['id']}/feedback", json={"label": "genuine"}, headers=auth
    )
    transaction = db.session.get(Prediction, body["id"]).transaction
    db.session.refresh(transaction)
    assert (transaction.fraud, transaction.label_source) == (True, "analyst")
    assert len(transaction.labels) == 2


def test_review_queue_orders_filters_and_labels_in_bulk(client, auth, users, stored_history):
    ids = [
        predict(client, auth, customer_id=c, amount=a)["id"]
        for c, a in ((1, 15.0), (2, 900.0), (3, 60.0))
    ]
    login(client, "analyst")
    page = client.get("/review").text
    rows = [int(part.split('"')[0]) for part in page.split('<tr data-id="')[1:]]
    scores = {p.id: p.score for p in db.session.scalars(select(Prediction))}
    assert sorted(rows) == sorted(ids)
    assert [scores[i] for i in rows] == sorted(scores.values(), reverse=True)
    assert "the risk" in page  # each row's explanation
    response = client.post(
        "/review/label", data={"ids": ids[:2], "genuine": "1", "next": "/review?status=unlabelled"}
    )
    assert response.location == "/review?status=unlabelled"
    remaining = client.get("/review").text
    assert remaining.count('<tr data-id="') == 1
    labelled = client.get("/review?status=analyst").text
    assert labelled.count('<tr data-id="') == 2
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "label.analyst"))
    assert [e.actor for e in events] == ["analyst"]


def test_review_filters(client, auth, users, stored_history):
    for amount in (5.0, 950.0):
        predict(client, auth, amount=amount)
    login(client, "analyst")
    high = client.get("/review?score_min=0.5").text.count('<tr data-id="')
    low = client.get("/review?score_max=0.5").text.count('<tr data-id="')
    assert high + low == 2
    today = dt.date.today()
    assert client.get(f"/review?date_from={today}").text.count('<tr data-id="') == 2
    tomorrow = today + dt.timedelta(days=1)
    assert client.get(f"/review?date_from={tomorrow}").text.count('<tr data-id="') == 0
    assert client.get("/review?model_version=v1").text.count('<tr data-id="') == 2
    assert client.get("/review?model_version=v9").status_code == 200
    bad = client.get("/review?score_min=7&date_from=nope")
    assert bad.status_code == 200 and "Number must be between" in bad.text


def test_label_without_selection_changes_nothing(client, users):
    login(client, "analyst")
    response = client.post("/review/label", data={"fraud": "1"}, follow_redirects=True)
    assert "Select at least one transaction." in response.text
    response = client.post("/review/label", data={"row": "1:maybe"}, follow_redirects=True)
    assert "Unknown label." in response.text


def test_coverage_figures(client, auth, users, stored_history):
    first = predict(client, auth)
    predict(client, auth)
    client.post(f"/api/v1/predictions/{first['id']}/feedback", json={"correct": True}, headers=auth)
    login(client, "analyst")
    page = client.get("/review/coverage").text
    assert "50 %" in page and "v1" in page


def test_review_filters_at_the_calendars_edges_show_everything(client, auth, users):
    predict(client, auth)
    login(client, "analyst")
    response = client.get("/review?date_from=0001-01-01&date_to=9999-12-31")
    assert response.status_code == 200 and response.text.count('<tr data-id="') == 1
    for query in ("page=99999999999999999999", "page=-3", "score_min=sNaN", "score_max=1e309"):
        response = client.get(f"/review?{query}")
        assert response.status_code == 200 and response.text.count('<tr data-id="') == 1


def test_labelling_an_id_no_row_can_have_changes_nothing(client, auth, users):
    predict(client, auth)
    login(client, "analyst")
    for ident in ("9223372036854775808", "9" * 400, "1e3"):
        response = client.post(
            "/review/label", data={"ids": [ident], "fraud": "1"}, follow_redirects=True
        )
        assert response.status_code == 200
    assert db.session.scalar(select(func.count()).select_from(Label)) == 0


def test_a_next_with_a_line_break_goes_to_the_queue(client, users):
    login(client, "analyst")
    response = client.post("/review/label", data={"row": "1:fraud", "next": "/review\r\nX-A: b"})
    assert response.status_code == 302 and response.location == "/review"
