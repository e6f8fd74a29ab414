"""Errors handled once for the whole app: an expired form says so, on pages and in JSON; an
error keeps the headers it carries (a 405's Allow)."""

from sqlalchemy import func, select

from fraudapp.extensions import db
from fraudapp.models import TrainingRun
from tests.conftest import login


def test_an_expired_form_goes_back_to_its_page_saying_so(app, client, users):
    login(client, "admin")
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post("/admin/runs", headers={"Referer": "http://localhost/admin/runs?x=1"})
    assert response.status_code == 302 and response.location == "/admin/runs?x=1"
    page = client.get("/admin/runs").text
    assert "The form expired or lost its security token; please try again." in page
    assert db.session.scalar(select(func.count()).select_from(TrainingRun)) == 0


def test_an_expired_form_from_elsewhere_gets_the_error_page(app, client, users):
    login(client, "admin")
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post("/admin/runs", headers={"Referer": "https://evil.example/"})
    assert response.status_code == 400 and "please try again" in response.text


def test_a_json_client_gets_the_csrf_error_as_json(app, client, users):
    login(client, "admin")
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post("/admin/models/rollback", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["message"].startswith("The form expired")


def test_a_method_not_allowed_names_the_allowed_ones(client):
    for path, method, allowed in [
        ("/api/v1/model", "put", {"GET", "HEAD", "OPTIONS"}),
        ("/api/v1/predictions", "delete", {"POST", "OPTIONS"}),
        ("/healthz", "trace", {"GET", "HEAD", "OPTIONS"}),
    ]:
        response = client.open(path, method=method.upper())
        assert response.status_code == 405, path
        assert set(response.headers["Allow"].split(", ")) == allowed, path
        assert response.headers.getlist("Content-Type") == [response.content_type]
