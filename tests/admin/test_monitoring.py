"""Monitoring: figures from labels, drift, alerts, snapshots, thresholds, admin pages."""

import csv
import datetime as dt
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from sklearn.metrics import average_precision_score
from sqlalchemy import select

from fraudapp import signing
from fraudapp.extensions import db
from fraudapp.ml.drift import band, psi
from fraudapp.ml.metrics import ap_from_histogram
from fraudapp.models import AuditEvent, MonitoringSnapshot, TrainingRun, WebhookDelivery
from fraudapp.services.demo import ensure_predictions
from fraudapp.services.monitoring import figures as monitoring
from tests.conftest import login, predict


@pytest.fixture
def scored_history(app, stored_history):
    """The last two weeks of the simulated history scored and stored as predictions."""
    ensure_predictions(days=14)
    return stored_history


def _period(days=14):
    return monitoring.default_period(days)


def test_ap_from_a_score_histogram_matches_sklearn_on_distinct_bins():
    rng = np.random.default_rng(0)
    scores = rng.permutation(1000) / 1000
    labels = (rng.random(1000) < scores * 0.3).astype(int)
    bins = (scores * 1000).astype(int)
    frauds = np.bincount(bins, weights=labels, minlength=1000)[::-1]  # highest scores first
    counts = np.bincount(bins, minlength=1000)[::-1]
    ap = float(ap_from_histogram(frauds, counts))
    assert ap == pytest.approx(average_precision_score(labels, scores))


def test_psi_bands():
    reference = {"edges": [0, 1, 2, 3, 4], "shares": [0.25, 0.25, 0.25, 0.25]}
    same = np.repeat([0.5, 1.5, 2.5, 3.5], 100)
    shifted = np.repeat([3.5], 400)
    assert psi(reference, same) == pytest.approx(0.0, abs=1e-9)
    assert band(psi(reference, shifted)) == "act"
    assert band(0.05) == "stable" and band(0.2) == "watch"


def test_performance_counts_the_confusion_matrix(scored_history):
    rows = monitoring.performance(_period(), threshold=0.5)
    labelled = [r for r in rows if r["labelled"]]
    assert labelled, "the first scored week carries imported labels"
    for r in labelled:
        assert r["tp"] + r["fp"] + r["fn"] + r["tn"] == r["labelled"] <= r["predictions"]
        if r["f1"] is not None:
            assert 0 <= r["f1"] <= 1
    weekly = monitoring.performance(
        monitoring.Period(_period().start, _period().end, "week"), threshold=0.5
    )
    assert sum(r["predictions"] for r in weekly) == sum(r["predictions"] for r in rows)


def test_threshold_curve_and_setting(scored_history, client, users):
    curve = monitoring.threshold_curve(_period(), target_precision=0.5)
    assert curve["labelled"] > 0 and curve["best_f1"]["f1"] > 0
    assert curve["precision_target"] is None or curve["precision_target"]["threshold"] >= 0
    login(client, "admin")
    assert client.post("/admin/threshold", data={"threshold": "0.123"}).status_code == 302
    assert client.post("/admin/threshold", data={"threshold": "1.5"}).status_code == 400
    event = db.session.query(AuditEvent).filter_by(action="threshold.changed").one()
    assert event.details["to"] == 0.123 and event.actor == "admin"
    body = client.post(
        "/api/v1/predictions",
        json={
            "tx_datetime": "2018-05-16T10:00:00",
            "customer_id": 1,
            "terminal_id": 2,
            "amount": 5.0,
            "consent": False,
        },
        headers=_token_headers(),
    ).get_json()
    assert body["threshold"] == 0.123


def _token_headers():
    from fraudapp.services.tokens import create_token

    return {"Authorization": f"Bearer {create_token('monitor-test')}"}


def test_monitor_stores_a_snapshot_and_exits_by_alert(scored_history, runner, app):
    end = scored_history["TX_DATETIME"].max().date()
    app.config["ALERT_F1_BELOW"] = 0.0
    quiet = runner.invoke(args=["monitor", "--as-of", str(end), "--json"])
    assert quiet.exit_code == 0, quiet.output
    body = json.loads(quiet.output)
    assert body["alerts"] == [] and body["figures"]["labelled"] > 0
    app.config["ALERT_F1_BELOW"] = 1.01
    loud = runner.invoke(args=["monitor", "--as-of", str(end)])
    assert loud.exit_code == 1 and "ALERT f1" in loud.output
    assert db.session.query(MonitoringSnapshot).count() == 2


@pytest.mark.parametrize("retrain_on_alert", [True, False])
def test_an_alert_queues_a_retraining_only_when_configured(
    scored_history, runner, app, retrain_on_alert
):
    end = scored_history["TX_DATETIME"].max().date()
    app.config.update(ALERT_F1_BELOW=1.01, RETRAIN_ON_ALERT=retrain_on_alert)
    assert runner.invoke(args=["monitor", "--as-of", str(end)]).exit_code == 1
    runs = [(r.reason, r.status) for r in db.session.scalars(select(TrainingRun))]
    assert runs == ([("alert", "queued")] if retrain_on_alert else [])


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.headers[signing.HEADER], body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_new_alerts_are_posted_signed_once(scored_history, runner, app):
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config.update(
        ALERT_F1_BELOW=1.01,
        WEBHOOK_SECRET="s3cret",
        ALERT_WEBHOOK_URLS=[f"http://127.0.0.1:{server.server_port}/alerts"],
    )
    end = str(scored_history["TX_DATETIME"].max().date())
    try:
        runner.invoke(args=["monitor", "--as-of", end])
        runner.invoke(args=["monitor", "--as-of", end])  # same alert again: not re-sent
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Receiver.received) == 1
    header, body = _Receiver.received[0]
    assert signing.verify("s3cret", header, body)
    assert not signing.verify("other", header, body)
    assert json.loads(body)["alerts"][0]["rule"] == "f1"
    delivery = db.session.scalars(select(WebhookDelivery)).one()
    assert (delivery.event, delivery.status) == ("monitoring.alert", "delivered")
    assert delivery.attempts == 1


def test_an_alert_webhook_that_fails_is_retried(scored_history, runner, app):
    app.config.update(
        ALERT_F1_BELOW=1.01, WEBHOOK_SECRET="s3cret", ALERT_WEBHOOK_URLS=["http://127.0.0.1:9/x"]
    )
    end = str(scored_history["TX_DATETIME"].max().date())
    result = runner.invoke(args=["monitor", "--as-of", end, "--json"])
    assert result.exit_code == 1
    sent = json.loads(result.output)["deliveries"]
    assert [(d["url"], d["delivery"]) for d in sent] == [("http://127.0.0.1:9/x", "pending")]
    delivery = db.session.scalars(select(WebhookDelivery)).one()
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("pending", 1, None)
    assert delivery.next_attempt_at is not None  # the trainer's courier retries it when due


def test_signature_window_and_tampering():
    body = b'{"a": 1}'
    header = signing.sign("k", body, timestamp=1_000_000)
    assert signing.verify("k", header, body, now=1_000_100)
    assert not signing.verify("k", header, body, now=1_000_000 + 301)
    assert not signing.verify("k", header, b'{"a": 2}', now=1_000_100)
    assert not signing.verify("k", "garbage", body)


def test_dashboard_pages_and_exports(scored_history, client, users):
    login(client, "admin")
    page = client.get("/admin/?granularity=week")
    assert page.status_code == 200
    for marker in ('id="chart-metrics"', 'id="performance"', 'id="drift"', "chart.umd.min.js"):
        assert marker in page.text
    csv_text = client.get("/admin/export/performance.csv").text
    assert csv_text.startswith("period,model_version,predictions")
    assert len(csv_text.splitlines()) > 2
    for name in ("volume", "drift", "distribution", "snapshots", "threshold", "audit"):
        assert client.get(f"/admin/export/{name}.csv").status_code == 200
    assert client.get("/admin/export/secrets.csv").status_code == 404
    assert client.get("/admin/?start=not-a-date&granularity=year").status_code == 200


def test_admin_pages_are_for_admins_only(client, users):
    assert client.get("/admin/").status_code == 302
    login(client, "analyst")
    for url in ("/admin/", "/admin/threshold", "/admin/audit", "/admin/export/audit.csv"):
        assert client.get(url).status_code == 403


def test_audit_log_lists_and_filters(client, users):
    login(client, "admin")
    client.post("/logout")
    login(client, "admin", "wrong-password")
    login(client, "admin")
    page = client.get("/admin/audit?action=login.failed").text
    assert "login.failed" in page and "1 event(s)" in page
    today = dt.date.today()
    assert "login" in client.get(f"/admin/audit?since={today}&actor=admin").text


def test_csv_exports_escape_cells_a_spreadsheet_would_run(client, users):
    for name in ('=HYPERLINK("https://evil.example","x")', "+1+2", "-3", "@SUM(A1)"):
        login(client, name, "wrong-password")
    login(client, "admin")
    rows = list(csv.DictReader(io.StringIO(client.get("/admin/export/audit.csv").text)))
    targets = {row["target"] for row in rows if row["action"] == "login.failed"}
    assert targets == {'\'=HYPERLINK("https://evil.example","x")', "'+1+2", "'-3", "'@SUM(A1)"}
    assert {row["target"] for row in rows if row["action"] == "login"} == {"admin"}


def test_aggregates_follow_labels_and_deletions(scored_history, client, auth):
    from fraudapp.services.monitoring import aggregates
    from fraudapp.services.transactions import changes

    period = _period()
    before = monitoring.performance(period, threshold=0.5)
    changes.mark_all()
    assert aggregates.refresh() > 0
    assert monitoring.performance(period, threshold=0.5) == before  # a rebuild changes nothing
    body = predict(client, auth, tx_datetime=f"{period.end}T12:00:00")
    day_rows = [r for r in monitoring.performance(period, 0.5) if r["period"] == str(period.end)]
    assert (
        sum(r["predictions"] for r in day_rows)
        == sum(r["predictions"] for r in before if r["period"] == str(period.end)) + 1
    )
    client.post(f"/api/v1/predictions/{body['id']}/feedback", json={"label": "fraud"}, headers=auth)
    after = [r for r in monitoring.performance(period, 0.5) if r["period"] == str(period.end)]
    assert sum(r["labelled"] for r in after) == sum(r["labelled"] for r in day_rows) + 1


def test_dashboard_without_any_prediction(client, users):
    login(client, "admin")
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/threshold").status_code == 200


def _stored_in_2099():
    """A prediction dated 2099 with a label, as one stored before future dates were refused."""
    from fraudapp.services.transactions import labels, scoring

    tx = scoring.TransactionIn(dt.datetime(2099, 12, 31, 12), 1, 2, 10.0)
    result = scoring.score(tx, consent=True)
    labels.give_feedback(result.id, "session:x", correct=False)


def test_a_row_dated_in_the_future_does_not_move_the_default_period(scored_history, client, users):
    before = _period(28)
    _stored_in_2099()
    after = _period(28)
    assert after == before and after.end <= dt.datetime.now(dt.UTC).date()
    login(client, "admin")
    assert "2099" not in client.get("/admin/").text


def test_period_and_page_arguments_at_the_edges(client, users):
    login(client, "admin")
    for url in (
        "/admin/?start=0001-01-01&end=9999-12-31&granularity=week",
        "/admin/threshold?target_precision=sNaN",
        "/admin/threshold?target_precision=1e309",
        "/admin/audit?page=99999999999999999999",
        "/admin/audit?page=" + "9" * 5000,
        "/admin/audit?since=0001-01-01&until=9999-12-31",
        "/admin/audit?actor=%00",
    ):
        assert client.get(url).status_code == 200, url
    for value in ("inf", "NaN", "sNaN", "1e309"):
        response = client.post("/admin/threshold", data={"threshold": value})
        assert response.status_code == 400
    assert client.get("/admin/?model_version=%00").status_code == 200  # not a version: ignored
