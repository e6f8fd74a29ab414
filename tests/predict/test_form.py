"""The prediction form: validation with field errors, consent, post/redirect/get."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from fraudapp.extensions import db
from fraudapp.models import Prediction, Transaction
from tests.conftest import after_history


def _form(**overrides):
    data = {
        "tx_datetime": after_history()[:16],
        "customer_id": "12",
        "terminal_id": "40",
        "amount": "42.50",
    }
    return data | overrides


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_form_page_defaults(client):
    page = client.get("/").get_data(as_text=True)
    assert 'name="tx_datetime"' in page and 'type="datetime-local"' in page
    assert 'name="consent"' in page and "checked" not in page
    assert "nothing about it is stored" in page


def test_submit_with_consent_stores_and_redirects_to_the_result(client, stored_history):
    response = client.post("/", data=_form(consent="y"))
    assert response.status_code == 302 and response.location.endswith("/result")
    page = client.get("/result").get_data(as_text=True)
    assert "Fraud probability" in page and "v1" in page and "the risk" in page
    assert "was stored" in page
    assert _count(Transaction) == len(stored_history) + 1 and _count(Prediction) == 1


def test_submit_without_consent_stores_nothing(client, stored_history):
    client.post("/", data=_form())
    page = client.get("/result").get_data(as_text=True)
    assert "Nothing about this transaction was stored" in page
    assert _count(Transaction) == len(stored_history) and _count(Prediction) == 0


def test_invalid_input_shows_field_errors_and_changes_nothing(client):
    response = client.post("/", data=_form(customer_id="", amount="-5", tx_datetime="soon"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter the customer id." in page
    assert "Use an amount from 0" in page
    assert "Not a valid datetime value." in page or "date and time" in page
    assert _count(Transaction) == 0


def test_result_without_a_submission_goes_back_to_the_form(client):
    response = client.get("/result")
    assert response.status_code == 302 and response.location.endswith("/")


def test_csrf_is_enforced(app, database_url, trained_registry):
    app.config["WTF_CSRF_ENABLED"] = True
    response = app.test_client().post("/", data=_form())
    assert response.status_code == 400
    assert _count(Transaction) == 0


def test_each_bad_field_gets_one_clear_message(client):
    page = client.post(
        "/", data=_form(customer_id="x" * 65, amount="3.456", tx_datetime="1900-01-01T10:00")
    ).text
    assert page.count("invalid-feedback") == 3
    assert "Use 1 to 64 characters." in page
    assert "Use at most two decimals." in page
    assert "Use a date from 1990 on." in page
    assert _count(Transaction) == 0


def test_a_time_in_the_future_is_a_field_error(client):
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    for value in (tomorrow, "2099-12-31T23:59", "9999-12-31T23:59"):
        response = client.post("/", data=_form(tx_datetime=value, consent="y"))
        assert response.status_code == 400
        assert "it is in the future" in response.text
    assert _count(Transaction) == 0


def test_a_time_within_the_clock_skew_allowance_is_scored(client, app):
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M")
    assert client.post("/", data=_form(tx_datetime=soon)).status_code == 302
    app.config["CLOCK_SKEW_SECONDS"] = 0
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")
    assert client.post("/", data=_form(tx_datetime=later)).status_code == 400


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", "inf", "Not a valid decimal value."),
        ("amount", "-Infinity", "Not a valid decimal value."),
        ("amount", "NaN", "Not a valid decimal value."),
        ("amount", "sNaN", "Not a valid decimal value."),
        ("amount", "1e309", "Not a valid decimal value."),
        ("amount", "1" * 29, "Not a valid decimal value."),
        ("amount", "1000000.01", "Use an amount from 0 to 1,000,000."),
        ("customer_id", "9" * 309, "Use 1 to 64 characters."),
        ("terminal_id", "9" * 5000, "Use 1 to 64 characters."),
    ],
)
def test_absurd_numbers_are_field_errors(client, field, value, message):
    response = client.post("/", data=_form(**{field: value}, consent="y"))
    assert response.status_code == 400
    assert message in response.text
    assert _count(Transaction) == 0
