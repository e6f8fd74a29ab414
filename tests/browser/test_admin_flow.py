"""End to end: the admin's dashboard draws its charts, a threshold set in the browser is used by
every gunicorn worker's API within a second, and the change is in the audit log."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DASHBOARD_SCREENSHOT = "/tmp/fraudapp-dashboard.png"  # noqa: S108
THRESHOLD_SCREENSHOT = "/tmp/fraudapp-threshold.png"  # noqa: S108
CHARTS = ("chart-metrics", "chart-scores", "chart-volume")
CHECK_INTERVAL = 1.0  # seconds: every worker re-reads the threshold within MODEL_CHECK_INTERVAL
PROPAGATION = 2.0  # seconds allowed for the page to show it (the API gets CHECK_INTERVAL)
PARALLEL = 6  # concurrent API requests per round, so that different workers answer

# Whether Chart.js made a chart on the canvas and painted some pixels on it.
CHART_STATE = """id => {
  const canvas = document.getElementById(id);
  const chart = window.Chart && Chart.getChart(canvas);
  if (!chart) return null;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
  return {type: chart.config.type, datasets: chart.data.datasets.length,
          labels: chart.data.labels.length, painted: painted};
}"""


def _score_threshold(live_server) -> float:
    """Score one transaction through the API without consent; the threshold in the answer."""
    body = {
        "tx_datetime": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "customer_id": 5,
        "terminal_id": 9,
        "amount": 42.0,
        "consent": False,
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
        answer = json.loads(response.read())
    assert answer["stored"] is False
    return answer["threshold"]


def test_dashboard_threshold_and_audit(page, login, live_server):
    login(page, "admin")

    # The dashboard: Chart.js charts drawn from the data, and tables of numbers beside them.
    response = page.goto("/admin/")
    assert response.status == 200
    assert page.title().startswith("Monitoring")
    assert page.evaluate("typeof window.Chart") == "function"
    for canvas in CHARTS:
        page.wait_for_function(f"({CHART_STATE})('{canvas}') !== null")
        state = page.evaluate(CHART_STATE, canvas)
        assert state["datasets"] >= 1 and state["labels"] >= 1, (canvas, state)
        assert state["painted"] > 0, f"nothing was drawn on #{canvas}"
    assert page.evaluate(CHART_STATE, "chart-metrics")["type"] == "line"
    rows = page.locator("#performance tbody tr")
    assert rows.count() >= 1
    predictions = [int(text) for text in rows.locator("td:nth-child(3)").all_inner_texts()]
    assert sum(predictions) > 0
    assert re.fullmatch(r"\d+(\.\d+)? %", rows.first.locator("td:nth-child(5)").inner_text())
    confusion = [int(text) for text in page.locator("#confusion td").all_inner_texts()]
    assert len(confusion) == 4 and sum(confusion) > 0
    assert page.locator("#drift tbody tr").count() >= 1
    old = float(page.inner_text("#serving-threshold"))
    page.screenshot(path=DASHBOARD_SCREENSHOT, full_page=True)

    # Threshold tuning: set a new serving threshold through the form.
    page.click("text=Threshold tuning")
    page.wait_for_url(re.compile(r"/admin/threshold"))
    page.wait_for_function(f"({CHART_STATE})('chart-threshold') !== null")
    assert float(page.inner_text("#current-threshold")) == pytest.approx(old)
    new = round(old + 0.05 if old < 0.9 else old - 0.05, 3)
    page.fill("#threshold-form #threshold", f"{new:.3f}")
    with page.expect_navigation():
        page.click("#threshold-form [type=submit]")
    set_at = time.monotonic()
    message = page.inner_text(".alert-success")
    assert message == f"Serving threshold of {live_server['model_version']} set to {new:.3f}."
    # The page shows the new value within the documented second. (The page the form redirects to
    # can still show the old one: the view reads the worker's cached threshold, which a worker
    # that served this page less than MODEL_CHECK_INTERVAL ago has not re-read yet.)
    while float(page.inner_text("#current-threshold")) != pytest.approx(new):
        assert time.monotonic() - set_at < PROPAGATION, "the page still shows the old threshold"
        time.sleep(0.2)
        page.reload()
    assert float(page.input_value("#threshold-form #threshold")) == pytest.approx(new)
    page.screenshot(path=THRESHOLD_SCREENSHOT, full_page=True)

    # Every worker's API uses it within a second: during that second an answer may still carry the
    # old threshold, after it none may. Concurrent requests, so that different workers answer.
    def threshold(_):
        return _score_threshold(live_server)

    early = []
    with ThreadPoolExecutor(PARALLEL) as pool:
        while time.monotonic() - set_at < CHECK_INTERVAL + 0.1:
            early += pool.map(threshold, range(PARALLEL))
            time.sleep(0.1)
        late = list(pool.map(threshold, range(3 * PARALLEL)))
    assert all(a == pytest.approx(new) or a == pytest.approx(old, abs=5e-4) for a in early), early
    assert late == [pytest.approx(new)] * len(late), f"a worker still serves the old one: {late}"

    # The dashboard shows it too, and the audit log has the change.
    page.goto("/admin/")
    assert float(page.inner_text("#serving-threshold")) == pytest.approx(new)
    page.click("nav >> text=Audit log")
    page.wait_for_url(re.compile(r"/admin/audit"))
    events = page.locator("#audit tbody tr", has_text="threshold.changed")
    assert events.count() >= 1
    latest = events.first.inner_text()
    assert live_server["admin"] in latest and live_server["model_version"] in latest
    assert f'"to": {new}' in latest
