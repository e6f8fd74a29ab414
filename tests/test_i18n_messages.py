"""Messages the services write reach the pages in the page's language: a refused file, a flashed
refusal, a failed file job, a training run's progress and error, an alert. The CLI, the JSON API
and what the database keeps stay English."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from flask_babel import refresh
from sqlalchemy import select

from fraudapp.extensions import db
from fraudapp.i18n import Message, shown
from fraudapp.models import FileJob, MonitoringSnapshot, TrainingRun, utcnow
from fraudapp.services.monitoring import alerts
from fraudapp.services.training import runs
from fraudapp.services.transactions import file_jobs
from tests.conftest import login

PT = {"Accept-Language": "pt-BR,pt;q=0.9"}
HEADER = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT\n"
BAD = HEADER + "a,2018-05-16 10:00:00,1,2,5\nb,2018-05-16 11:00:00,1,2,-5\n"  # line 3


def _failed_job(client) -> FileJob:
    data = {"file": (io.BytesIO(BAD.encode()), "bad.csv")}
    assert client.post("/files", data=data, content_type="multipart/form-data").status_code == 303
    assert file_jobs.work_once().status == "failed"
    db.session.expire_all()
    return db.session.scalar(select(FileJob).order_by(FileJob.id.desc()))


def test_a_message_is_stored_once_and_shown_in_the_readers_language(app):
    message = Message("line %(line)s: %(reason)s", line=3, reason=Message("publishing"))
    assert str(message) == "line 3: publishing"  # outside a request: English
    assert Message.read(message.stored()).stored() == message.stored()
    assert Message("publishing").stored() == "publishing"  # no parameters: the text itself
    with app.test_request_context(headers=PT):
        refresh()  # the app context of the test chose English already
        assert shown(message.stored()) == "linha 3: publicando"
        assert message.english() == "line 3: publishing"
        assert shown("an old plain text") == "an old plain text"
        assert shown('{"msgid": broken') == '{"msgid": broken'
        assert shown(None) == ""


def test_a_refused_file_says_why_in_the_pages_language(client, users):
    login(client, users["analyst"])
    job = _failed_job(client)
    english = (
        "the file was refused, nothing was stored: line 3: TX_AMOUNT: "
        "Use an amount from 0 to 1,000,000."
    )
    assert shown(job.error) == english  # outside a request (logs): English
    portuguese = (
        "o arquivo foi recusado, nada foi guardado: linha 3: TX_AMOUNT: "
        "Use um valor de 0 a 1.000.000."
    )
    assert portuguese in client.get(f"/files/{job.key}", headers=PT).text
    assert english in client.get(f"/files/{job.key}").text
    status = client.get(f"/files/{job.key}/status", headers=PT).get_json()
    assert status["error"] == portuguese


def test_the_score_file_command_refuses_in_english(runner, tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text(BAD)
    result = runner.invoke(args=["score-file", str(source), str(tmp_path / "out.csv")])
    assert result.exit_code != 0
    assert "line 3: TX_AMOUNT: Use an amount from 0 to 1,000,000." in result.output


def test_a_refused_shadow_and_promote_are_flashed_in_portuguese(client, users):
    login(client, users["admin"])
    page = client.post("/admin/models/v1/shadow", headers=PT, follow_redirects=True).text
    assert (
        "Não foi possível pôr v1 em sombra: v1 é a versão em produção (o campeão): "
        "ponha outra em sombra." in page
    )
    page = client.post("/admin/models/unshadow", headers=PT, follow_redirects=True).text
    assert "Não foi possível parar a sombra: nenhuma versão está em sombra." in page
    page = client.post("/admin/models/v9/promote", headers=PT, follow_redirects=True).text
    assert "Não foi possível promover v9: essa versão não existe." in page
    page = client.post("/admin/models/unshadow", follow_redirects=True).text
    assert "Cannot stop the shadow: no version is in shadow." in page


def test_a_runs_progress_and_error_in_portuguese(client, users):
    login(client, users["admin"])
    run = runs.request_run("admin", "admin")
    assert run.progress == "waiting for a trainer"
    assert "aguardando um treinador" in client.get(f"/admin/runs/{run.id}", headers=PT).text
    body = client.get(f"/admin/runs/{run.id}.json", headers=PT).get_json()
    assert body["progress"] == "aguardando um treinador" and body["error"] is None
    taken = runs.claim("test:1")
    taken.heartbeat_at = utcnow() - dt.timedelta(hours=1)
    db.session.commit()
    heard = f"{taken.heartbeat_at:%H:%M:%S}"
    assert runs.fail_stale(120) == 1
    body = client.get(f"/admin/runs/{run.id}.json", headers=PT).get_json()
    assert body["progress"] == "falhou"
    assert body["error"] == (
        f"o treinador parou de enviar sinais de vida às {heard} UTC "
        "(ele parou ou perdeu o banco de dados)"
    )
    page = client.get(f"/admin/runs/{run.id}").text
    assert f"the trainer stopped sending heartbeats at {heard} UTC" in page


def test_a_cancel_refusal_names_the_status_in_portuguese(app, client, users):
    login(client, users["admin"])
    run = TrainingRun(reason="admin", requested_by="admin", status="failed")
    db.session.add(run)
    db.session.commit()
    page = client.post(f"/admin/runs/{run.id}/cancel", headers=PT, follow_redirects=True).text
    assert (
        f"Não foi possível cancelar: o treinamento {run.id} não está ativo (situação: falhou): "
        "nada a cancelar." in page
    )
    refresh()  # the test's app context, which the requests shared, chose Portuguese
    with pytest.raises(runs.RunError, match=f"run {run.id} is failed: nothing to cancel"):
        runs.cancel(run.id, "cli")


FIGURES = {"f1": 0.41234, "labelled": 250, "coverage": 0.05, "drift": []}
SHOWN = FIGURES | {"start": "2018-05-01", "end": "2018-05-07"}
CONFIG = {
    "ALERT_WINDOW_DAYS": 7,
    "ALERT_MIN_LABELS": 100,
    "ALERT_F1_BELOW": 0.5,
    "ALERT_PSI_ABOVE": 0.25,
    "ALERT_COVERAGE_BELOW": 0.1,
}


def test_an_alert_on_the_dashboard_in_portuguese_and_english_elsewhere(client, users):
    raised = alerts.evaluate_rules(FIGURES, CONFIG)
    assert [a["message"] for a in raised] == [
        "F1 0.412 over the last 7 days is below 0.5 (250 labels)",
        "only 5% of stored predictions are labelled",
    ]
    assert "wording" not in json.dumps(alerts.for_machines(raised))
    db.session.add(MonitoringSnapshot(model_version="v1", figures=SHOWN, alerts=raised))
    db.session.commit()
    login(client, users["admin"])
    page = client.get("/admin/", headers=PT).text
    assert "F1 de 0,412 nos últimos 7 dias está abaixo de 0,5 (250 rótulos)" in page
    assert "só 5% das previsões guardadas têm rótulo" in page
    assert "considere treinar o modelo de novo com os rótulos recentes" in page


def test_an_old_alert_stored_as_plain_english_still_shows(client, users):
    old = {"rule": "f1", "message": "F1 0.300 is low", "suggestion": "retrain"}
    db.session.add(MonitoringSnapshot(model_version="v1", figures=SHOWN, alerts=[old]))
    db.session.commit()
    login(client, users["admin"])
    assert "F1 0.300 is low — retrain" in client.get("/admin/", headers=PT).text


def test_the_api_answers_a_future_time_in_english(client, auth):
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    body = {"tx_datetime": future, "customer_id": 1, "terminal_id": 2, "amount": 5.0}
    response = client.post("/api/v1/predictions", json=body, headers=auth | PT)
    assert response.status_code == 400
    assert "Use a time no later than now" in json.dumps(response.get_json())
