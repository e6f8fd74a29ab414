"""The admin pages of shadowing: Shadow on a run's page, the comparison and Promote with its
evidence, Stop shadow, refusals as messages, the dashboard's sections; the prediction form's page
is the same with a challenger in shadow."""

from __future__ import annotations

import re

from sqlalchemy import select

from fraudapp.extensions import db
from fraudapp.models import Prediction, TrainingRun
from fraudapp.services.distribution import releases
from fraudapp.services.monitoring import learning
from tests.conftest import after_history, login
from tests.services.test_shadow import _shared, other_version


def _run(version: str) -> TrainingRun:
    run = TrainingRun(
        reason="admin",
        requested_by="admin",
        status="succeeded",
        version=version,
        promotion="awaiting approval",
    )
    db.session.add(run)
    db.session.commit()
    return run


def test_shadow_compare_promote_and_stop_from_the_run_page(client, users):
    v2 = other_version()
    run = _run(v2)
    login(client, "admin")
    page = client.get(f"/admin/runs/{run.id}").text
    assert 'id="shadow-form"' in page and f"Shadow {v2}" in page

    response = client.post(f"/admin/models/{v2}/shadow")
    assert response.status_code == 302 and response.location.endswith(
        f"/admin/runs/{run.id}#shadow"
    )
    assert releases.challenger() == v2
    _shared("v1", v2, days=2, edge=0.1)
    page = client.get(f"/admin/runs/{run.id}").text
    assert 'id="shadow-state"' in page and 'id="shadow-promote-form"' in page
    assert (
        "120</strong> labelled transactions" in page and "<strong>2</strong> labelled days" in page
    )
    assert 'id="promote-form"' not in page  # the only Promote shows its evidence
    dashboard = client.get("/admin/").text
    assert "Champion vs challenger" in dashboard and f"{v2} is in shadow of v1" in dashboard
    assert f'href="/admin/runs/{run.id}#shadow"' in dashboard

    assert client.post("/admin/models/unshadow").status_code == 302
    assert releases.challenger() is None
    assert db.session.get(TrainingRun, run.id).promotion == "awaiting approval"
    assert 'id="no-challenger"' in client.get("/admin/").text
    client.post(f"/admin/models/{v2}/shadow")
    assert client.post(f"/admin/models/{v2}/promote").status_code == 302
    assert releases.current() == v2 and releases.challenger() is None


def test_refusals_are_messages_and_change_nothing(client, users):
    login(client, "admin")
    response = client.post("/admin/models/v1/shadow", follow_redirects=True)
    assert response.status_code == 200 and "Cannot shadow v1" in response.text
    response = client.post("/admin/models/v77/shadow", follow_redirects=True)
    assert "Cannot shadow v77: there is no such version" in response.text
    response = client.post("/admin/models/unshadow", follow_redirects=True)
    assert "Cannot stop the shadow: no version is in shadow" in response.text
    assert releases.challenger() is None
    login(client, "analyst")
    assert client.post("/admin/models/v1/shadow").status_code in (302, 403)
    assert releases.challenger() is None


def test_the_runs_page_marks_the_challenger(client, users):
    v2 = other_version()
    releases.start_shadow(v2, "admin")
    login(client, "admin")
    page = client.get("/admin/runs").text
    assert "in shadow</span>" in page and "Stop shadow" in page


def test_the_learning_panel_on_the_dashboard(client, users, runner):
    releases.release("v1", "promote", "admin")
    v2 = other_version()
    releases.release(v2, "promote", "admin")
    login(client, "admin")
    assert "No promotion measured yet" in client.get("/admin/").text
    learning.refresh()
    page = client.get("/admin/").text
    assert f'<tr data-version="{v2}"><td>{v2}</td>' in page


def test_the_prediction_form_is_the_same_with_a_challenger(client, stored_history):
    form = {
        "tx_datetime": after_history()[:16],
        "customer_id": "12",
        "terminal_id": "40",
        "amount": "42.50",
        "consent": "y",
    }
    client.post("/", data=form)
    plain = client.get("/result").text
    v2 = other_version()
    releases.start_shadow(v2, "admin")
    client.post("/", data=form | {"customer_id": "13"})
    shadowed = client.get("/result").text
    # the version as a word: the page's random tokens (CSRF, receipt) may hold "v2" inside them
    assert not re.search(rf"(?<![\w-]){v2}(?![\w-])", shadowed)
    assert "challenger" not in shadowed.lower()
    assert len(plain.splitlines()) == len(shadowed.splitlines())
    stored = db.session.scalars(select(Prediction).order_by(Prediction.id)).all()
    assert [p.challenger_version for p in stored] == [None, v2]
