"""Accounts: login, roles, throttling, safe redirects, cookies."""

import contextlib
import datetime as dt

import pytest
from sqlalchemy import select
from werkzeug.security import check_password_hash

from fraudapp import create_app
from fraudapp.extensions import db
from fraudapp.models import AuditEvent, User
from fraudapp.services import accounts
from tests.conftest import login


def test_login_and_logout(client, users):
    response = login(client, "analyst")
    assert response.status_code == 302 and response.location.endswith("/review")
    assert client.get("/review").status_code == 200
    client.post("/logout")
    assert client.get("/review").status_code == 302


def test_wrong_password_is_refused(client, users):
    response = login(client, "analyst", "wrong-password")
    assert response.status_code == 200 and "Wrong user name or password" in response.text
    assert client.get("/review").status_code == 302


def test_pages_need_a_login(client):
    response = client.get("/review")
    assert response.status_code == 302 and "/login?next=" in response.location


def test_repeated_failures_are_throttled(app, client, users):
    for _ in range(app.config["LOGIN_FREE_FAILURES"]):
        login(client, "analyst", "nope-nope")
    response = login(client, "analyst")  # right password, but throttled now
    assert response.status_code == 429 and "too many failed logins" in response.text
    assert int(response.headers["Retry-After"]) > 0
    assert client.get("/review").status_code == 302


def test_failures_from_one_address_do_not_lock_the_user_out_elsewhere(app, client, users):
    for _ in range(app.config["LOGIN_FREE_FAILURES"] + 3):
        login(client, "admin", "nope-nope", ip="198.51.100.66")
    assert login(client, "admin", ip="198.51.100.66").status_code == 429
    response = login(client, "admin", ip="192.0.2.10")  # the real admin, from elsewhere
    assert response.status_code == 302 and client.get("/admin/").status_code == 200


def test_one_address_trying_many_names_is_throttled(app, client, users):
    app.config["LOGIN_ADDRESS_FREE_FAILURES"] = 3
    for name in ("alice", "bob", "carol"):
        assert login(client, name, "nope-nope", ip="198.51.100.66").status_code == 200
    assert login(client, "analyst", ip="198.51.100.66").status_code == 429
    assert login(client, "analyst", ip="192.0.2.10").status_code == 302


def _time_passes(seconds: float) -> None:
    """Move every audit event `seconds` into the past."""
    for event in db.session.scalars(select(AuditEvent)):
        event.created_at = event.created_at - dt.timedelta(seconds=seconds)
    db.session.commit()


def test_the_wait_doubles_with_each_further_failure_up_to_the_cap(app, client, users):
    app.config.update(LOGIN_BACKOFF_SECONDS=10.0, LOGIN_BACKOFF_MAX_SECONDS=30.0)
    for _ in range(app.config["LOGIN_FREE_FAILURES"]):
        login(client, "analyst", "nope-nope")
    waits = []
    for _ in range(3):
        response = login(client, "analyst", "nope-nope")
        assert response.status_code == 429
        waits.append(int(response.headers["Retry-After"]))
        _time_passes(waits[-1] + 1)
        assert login(client, "analyst", "nope-nope").status_code == 200  # tried, and failed
    assert [round(w, -1) for w in waits] == [10, 20, 30]
    _time_passes(31)
    assert login(client, "analyst").status_code == 302


def test_a_success_clears_the_failures_of_its_name_and_address(app, client, users):
    for _ in range(2):
        for _ in range(app.config["LOGIN_FREE_FAILURES"] - 1):
            login(client, "analyst", "nope-nope")
        assert login(client, "analyst").status_code == 302
        client.post("/logout")


def test_unknown_names_cost_the_same_password_check(client, users, monkeypatch):
    checked = []

    def check(pwhash, password):
        checked.append(pwhash)
        return check_password_hash(pwhash, password)

    monkeypatch.setattr(accounts, "check_password_hash", check)
    login(client, "nobody-by-that-name", "nope-nope")
    login(client, "analyst", "nope-nope")
    login(client, "ana\x00lyst", "nope-nope")  # refused by the form: no check, no query
    real = db.session.scalar(select(User.password_hash).where(User.username == "analyst"))
    assert len(checked) == 2 and checked[1] == real
    assert checked[0].split("$")[0] == real.split("$")[0]  # same method, same cost


@pytest.mark.parametrize("field", ["username", "password"])
def test_control_characters_in_the_login_form_are_a_form_error(client, users, field):
    data = {"username": "analyst", "password": "password-123"} | {field: "ana\x00lyst\r\n"}
    response = client.post("/login", data=data)
    assert response.status_code == 400 and "Control characters are not allowed" in response.text
    assert client.get("/review").status_code == 302


def test_audit_rows_keep_no_control_characters_or_oversized_names(app, users):
    name = "=HYPERLINK(\x00" + "x" * 500
    assert accounts.authenticate(name, "nope-nope", "192.0.2.10\x00") is None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "login.failed"))
    assert event.target == event.actor == ("=HYPERLINK(" + "x" * 500)[:120]
    assert event.ip == "192.0.2.10"


@contextlib.contextmanager
def _behind_proxies(app, count: int):
    """The same app built with PROXY_COUNT `count`, in an app context of its own."""
    config = {k: app.config[k] for k in ("DATABASE_URL", "MODEL_DIR", "WTF_CSRF_ENABLED")}
    proxied = create_app({"TESTING": True, **config, "PROXY_COUNT": count})
    with proxied.app_context():
        yield proxied
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize(("count", "seen"), [(1, "203.0.113.9"), (0, "127.0.0.1")])
def test_client_address_behind_a_proxy(app, users, count, seen):
    with _behind_proxies(app, count) as proxied:
        client = proxied.test_client()
        for _ in range(app.config["LOGIN_FREE_FAILURES"]):
            client.post(
                "/login",
                data={"username": "admin", "password": "x" * 9},
                headers={"X-Forwarded-For": "203.0.113.9"},
            )
        ips = db.session.scalars(
            select(AuditEvent.ip).where(AuditEvent.action == "login.failed")
        ).all()
        elsewhere = client.post(
            "/login",
            data={"username": "admin", "password": "password-123"},
            headers={"X-Forwarded-For": "192.0.2.10"},
        )
    assert set(ips) == {seen}
    # Behind the proxy another client address is another client; without one it is the same.
    assert elsewhere.status_code == (302 if count else 429)


def test_a_forged_forwarded_address_is_stored_clean(app, users):
    forged = "=HYPERLINK(" + "9" * 100
    with _behind_proxies(app, 1) as proxied:
        response = proxied.test_client().post(
            "/login",
            data={"username": "admin", "password": "x" * 9},
            headers={"X-Forwarded-For": forged},
        )
        ip = db.session.scalar(select(AuditEvent.ip).where(AuditEvent.action == "login.failed"))
    assert response.status_code == 200 and ip == forged[:45]


def _fresh(app, call, *args, **kwargs):
    """`call` (a request) in an app context of its own, as under a server: within the fixture's
    context requests would share `g`, and with it Flask-Login's cached user."""
    with app.app_context():
        return call(*args, **kwargs)


def test_a_session_cookie_copied_before_logout_is_dead_after_it(app, client, users):
    _fresh(app, login, client, "analyst")
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    assert _fresh(app, thief.get, "/review").status_code == 200
    _fresh(app, client.post, "/logout")
    response = _fresh(app, thief.get, "/review")
    assert response.status_code == 302 and "/login" in response.location


def test_a_password_change_ends_the_users_sessions(app, client, runner, users):
    _fresh(app, login, client, "analyst")
    other = app.test_client()
    _fresh(app, login, other, "admin")
    result = runner.invoke(args=["set-password", "analyst", "--password", "new-password-9"])
    assert result.exit_code == 0, result.output
    assert _fresh(app, client.get, "/review").status_code == 302
    assert _fresh(app, other.get, "/review").status_code == 200  # other users keep theirs
    assert _fresh(app, login, client, "analyst").status_code == 200  # the old one is wrong now
    assert _fresh(app, login, client, "analyst", "new-password-9").status_code == 302


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set-password", "nobody", "--password", "password-123"], "no user named"),
        (["set-password", "analyst", "--password", "short"], "8 characters"),
        (["set-password", "analyst", "--password", "password\x00123"], "control characters"),
    ],
)
def test_set_password_refuses_bad_input(runner, users, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code == 1 and message in result.output


def test_sessions_from_before_session_tokens_are_refused(app, client, users):
    user_id = db.session.scalar(select(User.id).where(User.username == "analyst"))
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)  # what a cookie held before
        session["_fresh"] = True
    assert _fresh(app, client.get, "/review").status_code == 302


def test_logged_in_next_with_control_characters_is_not_followed(client, users):
    login(client, "analyst")
    response = client.get("/login?next=/review%0D%0Ax")
    assert response.status_code == 302 and response.location == "/review"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/review/coverage", "/review/coverage"),
        ("https://evil.example/x", "/review"),
        ("//evil.example/x", "/review"),
        ("/\\evil.example", "/review"),
        ("/review%0D%0ASet-Cookie:x=1", "/review"),
        ("/review/coverage%09x", "/review"),
        ("/review coverage", "/review"),
    ],
)
def test_next_is_followed_only_on_this_site(client, users, target, expected):
    response = login(client, "analyst", next_url=target)
    assert response.location == expected


def test_session_cookie_is_hardened(client, users):
    response = login(client, "analyst")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_passwords_are_hashed(app, users):
    from fraudapp.extensions import db
    from fraudapp.models import User

    user = db.session.query(User).filter_by(username="admin").one()
    assert "password-123" not in user.password_hash and user.check_password("password-123")


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("x", "boss", "password-123", "role"),
        ("x", "analyst", "short", "8 characters"),
        ("", "analyst", "password-123", "1-80"),
        ("ana\x00lyst", "analyst", "password-123", "control characters"),
        ("x", "analyst", "password\n123", "control characters"),
    ],
)
def test_bad_accounts_are_refused(app, name, role, password, message):
    with pytest.raises(accounts.AccountError, match=message):
        accounts.create_user(name, role, password)


def test_create_user_command(runner):
    result = runner.invoke(
        args=["create-user", "carol", "--role", "analyst"], input="password-123\npassword-123\n"
    )
    assert result.exit_code == 0, result.output
    assert (
        runner.invoke(
            args=["create-user", "carol", "--role", "analyst", "--password", "password-123"]
        ).exit_code
        == 1
    )
