"""End to end: the admin sees the running server on the nodes page, gets field errors for a bad
node, adds a node (told of the next promotion: the delivery and its failed attempts show on the
page) and removes it."""

from __future__ import annotations

import subprocess

import pytest

from tests.processes import FLASK, ROOT, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_nodes_page(page, login, live_server):
    login(page, "admin")
    page.goto("/admin/nodes")
    serving = page.inner_text("#current-version")
    assert serving == live_server["model_version"]
    assert page.locator("#node-status tbody tr").count() >= 1
    version = page.locator("#node-status .node-version").first
    state = page.locator("#node-status .node-state").first
    for _ in range(30):  # heartbeats come every NODE_SYNC_SECONDS (10 s): an earlier test may
        # have switched versions, or damaged one (its fallback serves the same version, degraded),
        # just before: wait for the next heartbeat to say both
        if version.inner_text() == serving and state.inner_text().strip() == "up to date":
            break
        page.wait_for_timeout(1000)
        page.reload()
    assert version.inner_text() == serving
    assert state.inner_text().strip() == "up to date"

    page.fill("#url", "ftp://nowhere")
    page.fill("#secret", "short")
    with page.expect_navigation():
        page.click("#node-form #submit")
    assert "Enter an http(s) URL" in page.inner_text("#node-form")
    assert "Use 16 to 200 characters" in page.inner_text("#node-form")
    assert page.locator("#endpoints tbody tr").inner_text().startswith("None")

    down = f"http://127.0.0.1:{free_port()}"  # a node that is not running
    page.fill("#url", down)
    page.fill("#secret", "a-node-secret-of-24-chars")
    with page.expect_navigation():
        page.click("#node-form #submit")
    assert f"{down} will be told" in page.inner_text("main")
    assert down in page.inner_text("#endpoints")

    # promoting the serving version again announces it: the delivery to the down node is pending
    subprocess.run(
        [*FLASK, "models", "promote", serving],
        cwd=ROOT,
        env=live_server["env"],
        check=True,
        capture_output=True,
    )
    page.goto("/admin/nodes")
    delivery = page.locator("#deliveries tbody tr").first.inner_text()
    assert down + "/hooks/model-published" in delivery and "pending" in delivery
    assert "Connection refused" in delivery

    with page.expect_navigation():
        page.locator("#endpoints form button").first.click()
    assert f"{down} is no longer told" in page.inner_text("main")
    assert down not in page.inner_text("#endpoints")
    delivery = page.locator("#deliveries tbody tr").first.inner_text()
    assert "failed" in delivery and "the node was removed" in delivery
