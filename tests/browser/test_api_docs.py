"""The API reference page renders the OpenAPI document in the browser, offline (every file from
the site itself) and under the Content-Security-Policy."""

from __future__ import annotations

import pytest

from tests.browser.test_security_headers import _watch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OPERATIONS = [
    ("POST", "/api/v1/predictions"),
    ("POST", "/api/v1/predictions/{prediction_id}/feedback"),
    ("GET", "/api/v1/model"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/healthz"),
]


def test_the_reference_lists_every_operation_with_no_csp_violation(page, live_server):
    problems = _watch(page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/")
    with page.expect_navigation():
        page.click("nav >> text=API")
    assert page.url.endswith("/api/docs")
    page.wait_for_selector(".opblock-summary-path")
    shown = page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(b => [
            b.querySelector('.opblock-summary-method').textContent.trim(),
            b.querySelector('.opblock-summary-path').getAttribute('data-path')])""",
    )
    assert sorted(map(tuple, shown)) == sorted(OPERATIONS)
    page.click("#operations-predictions-createPredictions .opblock-summary")
    page.wait_for_selector("text=Score one transaction or a list of up to 1,000")
    assert page.evaluate("window.__violations") == []
    assert problems == []
    assert requested and all(url.startswith(live_server["url"]) for url in requested), requested
