"""End to end: the admin shadows a trained version from its run page, predictions are scored by
both models while the champion decides, labels arrive, the run page and the dashboard compare the
two on the same transactions, and Promote (with that evidence) makes the challenger serve."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import pytest
from sqlalchemy import func, insert, select

from fraudapp.models import Prediction, TrainingRun
from tests.processes import FLASK, run_step

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PREDICTIONS = 24


def _api(live_server, path: str, body: dict) -> dict:
    request = urllib.request.Request(  # noqa: S310  (loopback, the live server)
        live_server["url"] + path,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {live_server['token']}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def _trained_run(live_server, live_db) -> tuple[int, str]:
    """A new version trained by the CLI (not promoted), recorded as a succeeded training run."""
    out = run_step([*FLASK, "train", "--json"], live_server["env"], live_server["log"])
    version = json.loads(out.strip().splitlines()[-1])["version"]
    with live_db.begin() as connection:
        run_id = connection.execute(
            insert(TrainingRun.__table__)
            .values(
                reason="cli",
                requested_by="cli",
                status="succeeded",
                version=version,
                promotion="awaiting approval",
                cancel_requested=False,
                created_at=dt.datetime.now(dt.UTC),
            )
            .returning(TrainingRun.__table__.c.id)
        ).scalar_one()
    return run_id, version


def test_shadow_compare_and_promote_through_the_admin_pages(page, login, live_server, live_db):
    champion = live_server["model_version"]
    run_id, challenger = _trained_run(live_server, live_db)
    login(page, "admin")
    page.goto(f"/admin/runs/{run_id}")
    with page.expect_navigation():
        page.click("#shadow-form button")
    assert page.inner_text("#shadow-state") == "in shadow"
    assert "No labelled transaction scored by both yet" in page.inner_text("main")

    page.wait_for_timeout(1500)  # every worker re-reads the shadow pointer within a second
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    answers = []
    for k in range(PREDICTIONS):
        body = {
            "tx_datetime": (now - dt.timedelta(minutes=PREDICTIONS - k)).isoformat(),
            "customer_id": 3 + k,
            "terminal_id": 7 + k,
            "amount": 20.0 + 15 * k,
            "consent": True,
        }
        answer = _api(live_server, "/api/v1/predictions", body)
        assert answer["model_version"] == champion and "challenger" not in json.dumps(answer)
        answers.append(answer)
    for k, answer in enumerate(answers):
        label = "fraud" if k % 3 == 0 else "genuine"
        _api(live_server, f"/api/v1/predictions/{answer['id']}/feedback", {"label": label})
    with live_db.connect() as connection:
        both = connection.scalar(
            select(func.count())
            .select_from(Prediction)
            .where(
                Prediction.id.in_([a["id"] for a in answers]),
                Prediction.challenger_version == challenger,
            )
        )
    assert both == PREDICTIONS  # every worker scored with the challenger too

    page.goto(f"/admin/runs/{run_id}")
    evidence = page.inner_text("#shadow-evidence")
    assert f"{PREDICTIONS} labelled transactions" in evidence and "1 labelled day" in evidence
    rows = page.locator("#shadow-overall tbody tr")
    assert rows.count() == 2
    assert page.locator("#shadow-per-day tbody tr").count() == 1
    ap = page.locator("#shadow-overall tr[data-role=challenger] .shadow-ap").inner_text()
    assert ap != "—"
    assert f"AP {ap}" in page.inner_text("#shadow-promote-form")

    page.goto("/admin/")
    section = page.inner_text("main")
    assert (
        "Champion vs challenger" in section
        and f"{challenger} is in shadow of {champion}" in section
    )
    assert page.locator("#shadow-overall tbody tr").count() == 2

    page.goto(f"/admin/runs/{run_id}")
    with page.expect_navigation():
        page.click("#shadow-promote-form button")
    assert page.inner_text("#serving-version") == challenger
    page.goto("/admin/")
    assert page.locator("#no-challenger").count() == 1

    run_step([*FLASK, "models", "promote", champion], live_server["env"], live_server["log"])
