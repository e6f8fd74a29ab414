"""End to end: the admin clicks Retrain now, watches the run finish without reloading, promotes the
new version, and the prediction page shows it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).parent / "flask")


def test_retrain_watch_promote_and_predict(page, login, live_server):
    login(page, "admin")
    page.goto("/admin/runs")
    with page.expect_navigation():
        page.click("#retrain-form button")
    assert page.inner_text("#run-status") in ("queued", "running")
    run_url = page.url

    env = {**live_server["env"], "FRAUDAPP_TRAINER_NICE": "0"}
    trainer = subprocess.Popen(
        [FLASK, "--app", "fraudapp", "trainer", "--once"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # the page polls and reloads itself when the run ends: no reload from the test
        page.wait_for_function(
            "() => ['succeeded', 'failed', 'cancelled'].includes("
            "document.getElementById('run-status').textContent.trim())",
            timeout=240_000,
        )
    finally:
        output, _ = trainer.communicate(timeout=240)
    assert page.url == run_url
    assert page.inner_text("#run-status") == "succeeded", output
    assert "ap" in page.inner_text("#run-metrics").lower()

    if page.locator("#promote-form").count():
        with page.expect_navigation():
            page.click("#promote-form button")
    page.goto("/admin/runs")
    new_version = page.inner_text("#serving-version")
    assert new_version != live_server["model_version"]

    page.goto("/")
    page.fill("#customer_id", "11")
    page.fill("#terminal_id", "22")
    page.fill("#amount", "33.30")
    with page.expect_navigation():
        page.click("#submit")
    for _ in range(10):  # every worker follows the pointer within MODEL_CHECK_INTERVAL
        if page.inner_text("#model-version") == new_version:
            break
        page.wait_for_timeout(300)
        page.goto("/")
        page.fill("#customer_id", "11")
        page.fill("#terminal_id", "22")
        page.fill("#amount", "33.30")
        with page.expect_navigation():
            page.click("#submit")
    assert page.inner_text("#model-version") == new_version

    subprocess.run(
        [FLASK, "--app", "fraudapp", "models", "promote", live_server["model_version"]],
        cwd=ROOT,
        env=live_server["env"],
        check=True,
        capture_output=True,
    )  # leave the shared server as it was
