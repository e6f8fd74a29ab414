"""End to end: the prediction form in chromium against a real gunicorn on a fresh demo instance."""

from __future__ import annotations

import datetime as dt
import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RESULT_SCREENSHOT = "/tmp/fraudapp-result.png"  # noqa: S108
FORM_SCREENSHOT = "/tmp/fraudapp-form.png"  # noqa: S108
ERRORS_SCREENSHOT = "/tmp/fraudapp-form-errors.png"  # noqa: S108


def _fill(page, customer="12", terminal="34", amount="57.30", consent=True):
    page.fill("#customer_id", customer)
    page.fill("#terminal_id", terminal)
    page.fill("#amount", amount)
    page.set_checked("#consent", consent)


def _submit(page) -> int:
    """Click the submit button and wait for the page it leads to; the POST's HTTP status."""
    with page.expect_navigation() as navigation:
        page.click("#submit")
    request = navigation.value.request
    post = request.redirected_from or request  # a 302 is followed to the result page
    assert post.method == "POST"
    return post.response().status


def test_consented_transaction_is_scored_explained_and_stored(page, live_server):
    page.goto("/")
    assert page.title().startswith("Score a transaction")
    # The date defaults to now (UTC, to the minute).
    shown = dt.datetime.fromisoformat(page.input_value("#tx_datetime"))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert abs(now - shown) < dt.timedelta(minutes=5)
    page.screenshot(path=FORM_SCREENSHOT, full_page=True)

    _fill(page)
    assert _submit(page) == 302
    assert page.url == live_server["url"] + "/result"

    assert page.text_content("#decision").strip() in {"Likely fraud", "Looks genuine"}
    assert re.fullmatch(r"\d{1,3}\.\d %", page.text_content("#score").strip())
    assert page.text_content("#model-version").strip() == live_server["model_version"]
    reasons = page.locator("#reasons li")
    assert reasons.count() >= 1
    assert reasons.first.inner_text().strip()
    text = page.inner_text("main")
    assert "This transaction was stored with its prediction" in text
    assert "Nothing about this transaction was stored" not in text
    page.screenshot(path=RESULT_SCREENSHOT, full_page=True)

    page.click("text=Score another transaction")
    page.wait_for_url(live_server["url"] + "/")
    assert page.is_visible("#customer_id")
    assert page.input_value("#customer_id") == ""


def test_without_consent_nothing_is_stored(page, live_server):
    page.goto("/")
    _fill(page, customer="7", terminal="8", amount="12.00", consent=False)
    assert _submit(page) == 302
    assert page.url == live_server["url"] + "/result"
    assert page.is_visible("#decision")
    text = page.inner_text("main")
    assert "Nothing about this transaction was stored" in text
    assert "consent was not given" in text
    assert "was stored with its prediction" not in text


def test_invalid_input_shows_the_form_again_with_field_errors(page, live_server):
    page.goto("/")
    _fill(page, customer="", terminal="34", amount="-5")
    assert _submit(page) == 400
    assert page.url == live_server["url"] + "/"
    assert page.locator("#decision").count() == 0
    page.screenshot(path=ERRORS_SCREENSHOT, full_page=True)

    customer_error = page.locator("#customer_id ~ .invalid-feedback")
    amount_error = page.locator("#amount ~ .invalid-feedback")
    assert customer_error.inner_text() == "Enter the customer id."
    assert amount_error.inner_text() == "Use an amount from 0 to 1,000,000."
    assert customer_error.is_visible() and amount_error.is_visible()
    assert "is-invalid" in page.get_attribute("#customer_id", "class")
    assert "is-invalid" in page.get_attribute("#amount", "class")
    assert page.locator("#terminal_id ~ .invalid-feedback").count() == 0
    # What was typed is kept.
    assert page.input_value("#terminal_id") == "34"
    assert page.input_value("#amount") == "-5"
