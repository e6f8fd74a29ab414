"""End to end under the Content-Security-Policy: the pages work with no inline script, the
dashboard's charts are drawn, and the browser reports no violation (console or event)."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import pytest

from tests.browser.test_admin_flow import CHART_STATE, CHARTS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Collects every securitypolicyviolation event of the page, from before its first script runs.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", e => {
  window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


def _watch(page) -> list[str]:
    """Console errors (other than a missing resource, such as /favicon.ico) and script errors of
    the page, as they come."""
    problems: list[str] = []

    def console(message) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.add_init_script(RECORD_VIOLATIONS)
    return problems


def test_dashboard_charts_render_with_no_csp_violation(page, login, live_server):
    problems = _watch(page)
    login(page, "admin")
    response = page.goto("/admin/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    for canvas in CHARTS:
        page.wait_for_function(f"({CHART_STATE})('{canvas}') !== null")
        assert page.evaluate(CHART_STATE, canvas)["painted"] > 0, canvas
    assert page.evaluate("window.__violations") == []
    page.goto("/admin/threshold")
    page.wait_for_function(f"({CHART_STATE})('chart-threshold') !== null")
    assert page.evaluate("window.__violations") == []
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    assert problems == []


def _store_a_prediction(live_server) -> None:
    body = {
        "tx_datetime": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "customer_id": 7,
        "terminal_id": 11,
        "amount": 12.0,
        "consent": True,
    }
    request = urllib.request.Request(  # noqa: S310  (loopback, the live server)
        live_server["url"] + "/api/v1/predictions",
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {live_server['token']}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 201


def test_review_select_all_works_from_the_static_script(page, login, live_server):
    _store_a_prediction(live_server)
    problems = _watch(page)
    login(page, "analyst")
    page.goto("/review?status=unlabelled")
    boxes = page.locator("input[name=ids]")
    assert boxes.count() >= 1
    page.click("input[data-select-all]")
    assert all(boxes.nth(i).is_checked() for i in range(boxes.count()))
    page.click("input[data-select-all]")
    assert not any(boxes.nth(i).is_checked() for i in range(boxes.count()))
    assert page.evaluate("window.__violations") == [] and problems == []
