"""End to end: a submitter's feedback reaches the analysts' review queue, an analyst's label
outranks it, and the submitter deletes the data — in chromium against the shared live gunicorn."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.browser.conftest import accept_dialogs

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A transaction no other browser test uses, so its row can be told apart in the queue.
CUSTOMER, TERMINAL, AMOUNT = "48151", "62342", "731.19"
MAX_QUEUE_PAGES = 20  # bound on the pages searched for one row


def _navigate(page, selector: str):
    """Click `selector` and wait for the page it leads to; that page's response."""
    with page.expect_navigation() as navigation:
        page.click(selector)
    return navigation.value


def _queue_row(page, status: str, prediction_id: str | None = None):
    """Open the review queue filtered by label status (predictions since yesterday, so a run across
    midnight UTC finds its row) and return the row of our transaction (or of `prediction_id`),
    looking through the pages; None if it is not there."""
    since = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    for number in range(1, MAX_QUEUE_PAGES + 1):
        response = page.goto(f"/review?status={status}&date_from={since}&page={number}")
        assert response.status == 200
        assert page.title().startswith("Review queue")
        rows = page.locator("#queue tr[data-id]")
        for index in range(rows.count()):
            row = rows.nth(index)
            if prediction_id is not None:
                if row.get_attribute("data-id") == prediction_id:
                    return row
                continue
            cells = [cell.strip() for cell in row.locator("td").all_inner_texts()]
            if cells[4:7] == [CUSTOMER, TERMINAL, AMOUNT]:
                return row
        if page.locator(".pagination .page-item.active").count() == 0:
            return None  # a single page
        active = page.inner_text(".pagination .page-item.active").strip()
        if not page.locator(".pagination a.page-link", has_text=str(int(active) + 1)).count():
            return None  # the last page
    pytest.fail(f"the review queue has more than {MAX_QUEUE_PAGES} pages of {status!r} rows")


def test_feedback_is_reviewed_by_an_analyst_and_the_data_can_be_deleted(
    page, new_page, login, live_server
):
    base = live_server["url"]

    # 1. The submitter scores a transaction with consent and says the decision was wrong.
    page.goto("/")
    page.fill("#customer_id", CUSTOMER)
    page.fill("#terminal_id", TERMINAL)
    page.fill("#amount", AMOUNT)
    page.set_checked("#consent", True)
    _navigate(page, "#submit")
    assert page.url == base + "/result"
    predicted_fraud = page.inner_text("#decision").strip() == "Likely fraud"
    feedback_label = "genuine" if predicted_fraud else "fraud"
    analyst_label = "genuine" if feedback_label == "fraud" else "fraud"  # the opposite: visible
    receipt = page.inner_text("#receipt").strip()
    assert receipt
    assert page.get_attribute("#my-data-link", "href") == f"/my-data/{receipt}"

    _navigate(page, "#wrong")
    assert page.url == f"{base}/my-data/{receipt}"
    assert "your answer was recorded" in page.inner_text(".alert-success")
    answers = page.locator("#answers li")
    assert answers.count() == 1
    assert answers.first.inner_text().endswith("— wrong")
    assert page.inner_text("#label-now").strip() == f"{feedback_label} (feedback)"

    # 2. An analyst may not see the admin pages, but finds the prediction among the feedback.
    analyst = new_page()
    login(analyst, "analyst")
    assert analyst.goto("/admin/").status == 403
    assert analyst.goto("/admin/threshold").status == 403

    row = _queue_row(analyst, "feedback")
    assert row is not None, "the prediction with feedback is not in the 'feedback' queue"
    prediction_id = row.get_attribute("data-id")
    label_cell = row.locator(".label-cell").inner_text().strip()
    assert label_cell == f"{feedback_label} (feedback)"

    # 3. The analyst labels it with the row's own button; it moves to the "analyst" status.
    button = f"button[name=row][value='{prediction_id}:{analyst_label}']"
    _navigate(analyst, f"#queue tr[data-id='{prediction_id}'] {button}")
    assert f"Labelled 1 transaction(s) as {analyst_label}." in analyst.inner_text(".alert-success")
    assert "status=feedback" in analyst.url  # back on the page the analyst came from
    assert analyst.locator(f"#queue tr[data-id='{prediction_id}']").count() == 0
    assert _queue_row(analyst, "feedback", prediction_id) is None
    row = _queue_row(analyst, "analyst", prediction_id)
    assert row is not None, "the labelled prediction is not in the 'analyst' queue"
    assert row.locator(".label-cell").inner_text().strip() == f"{analyst_label} (analyst)"

    # 4. The submitter, in a fresh browser (not logged in), sees the analyst's label outrank the
    # answer, and deletes everything; the receipt then leads nowhere.
    submitter = new_page()
    assert submitter.goto(f"/my-data/{receipt}").status == 200
    assert submitter.inner_text("#label-now").strip() == f"{analyst_label} (analyst)"
    assert submitter.locator("#answers li").count() == 1
    dialogs = accept_dialogs(submitter)
    _navigate(submitter, "#delete")
    assert dialogs == ["Delete this transaction and everything stored about it?"]
    assert submitter.url == base + "/"
    assert "Your data was deleted" in submitter.inner_text(".alert-success")
    assert submitter.goto(f"/my-data/{receipt}").status == 404
    assert page.goto(f"/my-data/{receipt}").status == 404
    assert _queue_row(analyst, "analyst", prediction_id) is None
