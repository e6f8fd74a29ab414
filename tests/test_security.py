"""HTTP hardening: security headers on pages, API and /healthz; the body size limit (413 before
anything parses the body, also when chunked); the JSON nesting limit of API and webhook bodies."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import flask
import flask_talisman
import pytest
from sqlalchemy import func, select

from fraudapp import jsonbody
from fraudapp.extensions import db
from fraudapp.models import Transaction
from fraudapp.signing import HEADER, sign
from tests.conftest import after_history, settings_of

SECRET = "webhook-secret-for-tests-" + "x" * 16
DEEP = 1000
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
INLINE = re.compile(r"\son[a-z]+\s*=|\sstyle\s*=|javascript:|<style", re.IGNORECASE)


def _count() -> int:
    return db.session.scalar(select(func.count()).select_from(Transaction))


def _transaction(**overrides) -> dict:
    return {
        "tx_datetime": after_history(),
        "customer_id": 12,
        "terminal_id": 40,
        "amount": 42.5,
        "consent": True,
    } | overrides


def _assert_security_headers(response) -> None:
    csp = response.headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["default-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_security_headers_on_a_page_the_api_and_healthz(client, auth):
    for response in (
        client.get("/"),
        client.get("/login"),
        client.get("/api/v1/model", headers=auth),
        client.post("/api/v1/predictions", json={}, headers=auth),  # a 400 too
        client.get("/healthz"),
        client.get("/no-such-page"),  # and an error page
    ):
        _assert_security_headers(response)
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP, cookie not secure


def test_the_headers_options_and_policy_are_worked_out_once_per_view(client, monkeypatch):
    calls = []
    talisman = flask_talisman.Talisman
    gather, parse = talisman._get_local_options, talisman._parse_policy
    monkeypatch.setattr(talisman, "_get_local_options", lambda t: calls.append("o") or gather(t))
    monkeypatch.setattr(talisman, "_parse_policy", lambda t, p: calls.append("p") or parse(t, p))
    responses = [client.get("/healthz") for _ in range(3)]
    for response in responses:
        _assert_security_headers(response)
    assert calls.count("o") <= 1 and calls.count("p") <= 1  # Flask-Talisman's: 3 and 1 a request
    assert len({r.headers["Content-Security-Policy"] for r in responses}) == 1


def test_a_request_without_a_session_cookie_builds_no_cookie_signer(
    app, client, auth, stored_history, monkeypatch
):
    signers = []
    build = app.session_interface.get_signing_serializer
    monkeypatch.setattr(
        app.session_interface, "get_signing_serializer", lambda a: signers.append(1) or build(a)
    )
    response = client.post("/api/v1/predictions", json=_transaction(), headers=auth)
    assert response.status_code == 201 and "Set-Cookie" not in response.headers
    assert signers == []


def test_a_session_is_still_kept_in_its_cookie(app, client):
    @app.get("/_test/session/<value>")
    def put(value):
        flask.session["value"] = value
        return ""

    @app.get("/_test/session")
    def read():
        return flask.session.get("value", "none")

    assert client.get("/_test/session").text == "none"
    assert "Set-Cookie" not in client.get("/_test/session").headers
    assert "session=" in client.get("/_test/session/kept").headers["Set-Cookie"]
    assert client.get("/_test/session").text == "kept"


def test_no_redirect_to_https_by_default(client):
    response = client.get("/")
    assert response.status_code == 200


def test_hsts_only_when_the_session_cookie_is_secure(app, client):
    assert "Strict-Transport-Security" not in client.get("/", base_url="https://localhost").headers
    app.config["SESSION_COOKIE_SECURE"] = True
    from fraudapp import create_app

    secure = create_app(settings_of(app))
    response = secure.test_client().get("/", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert secure.config["SESSION_COOKIE_SECURE"] is True
    with secure.app_context():
        db.session.remove()
        db.engine.dispose()


def test_pages_carry_no_inline_script_or_handler(client, users):
    from tests.conftest import login

    login(client, users["admin"])
    for path in ("/", "/login", "/review", "/admin/", "/admin/runs", "/admin/threshold"):
        page = client.get(path).get_data(as_text=True)
        for tag in page.split("<script")[1:]:
            opening = tag.split(">", 1)[0]
            assert 'src="' in opening or 'type="application/json"' in opening, (path, opening)
        assert not INLINE.search(page), (path, INLINE.search(page))


def test_templates_carry_no_inline_handler_style_or_script_url():
    for template in TEMPLATES.rglob("*.html"):
        found = INLINE.search(template.read_text())
        assert found is None, (template, found)


# -- body size ------------------------------------------------------------------------------


@pytest.fixture
def small_bodies(app):
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    return app


def _padded(body: dict, size: int) -> bytes:
    """A valid JSON body padded with whitespace to `size` bytes."""
    text = json.dumps(body).encode()
    return text[:-1] + b" " * (size - len(text)) + b"}"


def test_a_large_api_body_is_refused_with_json_413_before_it_is_parsed(
    small_bodies, client, auth, monkeypatch
):
    parsed = []
    monkeypatch.setattr(jsonbody, "loads", lambda *args: parsed.append(args))
    response = client.post(
        "/api/v1/predictions",
        data=_padded(_transaction(), 65 * 1024),
        headers=auth,
        content_type="application/json",
    )
    assert response.status_code == 413
    body = response.get_json()
    assert body["error"] == "Request Entity Too Large" and "limit" in body["message"]
    assert parsed == [] and _count() == 0


def test_a_large_chunked_api_body_is_refused_with_413(small_bodies, client, auth):
    body = b'{"padding": "' + b"x" * 100 * 1024 + b'"}'
    response = client.post(
        "/api/v1/predictions",
        input_stream=io.BytesIO(body),  # no Content-Length is sent with a chunked body
        headers={**auth, "Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets it
    )
    assert response.status_code == 413 and response.get_json()["error"]
    assert _count() == 0


def test_a_body_under_the_limit_is_served(small_bodies, client, auth, stored_history):
    before = _count()
    response = client.post(
        "/api/v1/predictions",
        data=_padded(_transaction(), 60 * 1024),
        headers=auth,
        content_type="application/json",
    )
    assert response.status_code == 201 and _count() == before + 1


def test_the_default_limit_fits_a_batch_of_a_thousand(app, client, auth, stored_history):
    batch = {"transactions": [_transaction(transaction_id=f"t{i:060d}") for i in range(1000)]}
    body = json.dumps(batch).encode()
    assert len(body) < app.config["MAX_CONTENT_LENGTH"]
    response = client.post(
        "/api/v1/predictions", data=body, headers=auth, content_type="application/json"
    )
    assert response.status_code == 201 and len(response.get_json()["predictions"]) == 1000


def test_a_large_form_is_refused_with_an_html_413(small_bodies, client, stored_history):
    before = _count()
    form = {
        "tx_datetime": after_history()[:16],
        "customer_id": "12",
        "terminal_id": "40",
        "amount": "42.50",
        "consent": "y",
        "padding": "x" * 65 * 1024,
    }
    response = client.post("/", data=form)
    assert response.status_code == 413
    assert response.mimetype == "text/html" and "Too Large" in response.get_data(as_text=True)
    assert _count() == before


def test_a_large_chunked_form_is_refused_with_an_html_413(small_bodies, client, stored_history):
    before = _count()
    body = f"tx_datetime={after_history()[:16]}&customer_id=12&terminal_id=40&amount=4&consent=y"
    response = client.post(
        "/",
        input_stream=io.BytesIO(body.encode() + b"&padding=" + b"x" * 65 * 1024),
        headers={
            "Transfer-Encoding": "chunked",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413 and response.mimetype == "text/html"
    assert _count() == before


# -- JSON nesting ---------------------------------------------------------------------------


def _deep(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


def test_json_depth_counts_brackets_outside_strings():
    assert jsonbody.depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert jsonbody.depth(b'"\\"[[[["') == 0
    assert jsonbody.depth(_deep(DEEP)) == DEEP
    with pytest.raises(jsonbody.TooDeep):
        jsonbody.loads(b"[" * 33 + b"]" * 33, 32)
    assert jsonbody.loads(b"[" * 32 + b"]" * 32, 32) is not None
    with pytest.raises(jsonbody.NotJSON):
        jsonbody.loads(b"\xff{}", 32)


def test_a_body_with_fewer_brackets_than_the_limit_is_not_counted(monkeypatch):
    monkeypatch.setattr(jsonbody, "depth", lambda data: pytest.fail("counted"))
    assert jsonbody.loads(b'{"a": [1, {"b": "[[[["}]}', 8) == {"a": [1, {"b": "[[[["}]}
    monkeypatch.undo()
    with pytest.raises(jsonbody.TooDeep):  # more brackets than the limit: counted
        jsonbody.loads(b'{"a": [[["{{{{{{"]]]}', 3)
    assert jsonbody.loads(b'{"a": "[[[[[[[[[["}', 3) == {"a": "[[[[[[[[[["}


def test_deeply_nested_json_is_a_field_error_on_the_api(client, auth, stored_history):
    response = client.post(
        "/api/v1/predictions", data=_deep(DEEP), headers=auth, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.get_json() == {"errors": {"body": ["nested too deeply"]}}
    prediction = client.post("/api/v1/predictions", json=_transaction(), headers=auth)
    feedback = client.post(
        f"/api/v1/predictions/{prediction.get_json()['id']}/feedback",
        data=_deep(DEEP),
        headers=auth,
        content_type="application/json",
    )
    assert feedback.status_code == 400
    assert feedback.get_json() == {"errors": {"body": ["nested too deeply"]}}


def test_a_transaction_nested_within_the_limit_still_scores(client, auth, stored_history):
    body = _transaction(extra=json.loads(_deep(20)))  # unknown fields are ignored
    assert client.post("/api/v1/predictions", json=body, headers=auth).status_code == 201


def test_deeply_nested_json_on_a_signed_webhook_is_a_field_error(app, client):
    app.config["WEBHOOK_SECRET"] = SECRET
    body = _deep(DEEP)
    response = client.post(
        "/hooks/model-published", data=body, headers={HEADER: sign(SECRET, body)}
    )
    assert response.status_code == 400
    assert response.get_json() == {"errors": {"body": ["nested too deeply"]}}
