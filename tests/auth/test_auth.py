"""Accounts: login, roles, throttling, safe redirects, cookies."""

import pytest

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


def test_repeated_failures_are_throttled(client, users):
    for _ in range(accounts.MAX_FAILURES):
        login(client, "analyst", "nope-nope")
    response = login(client, "analyst")  # right password, but throttled now
    assert response.status_code == 429 and "too many failed logins" in response.text
    assert client.get("/review").status_code == 302


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/review/coverage", "/review/coverage"),
        ("https://evil.example/x", "/review"),
        ("//evil.example/x", "/review"),
        ("/\\evil.example", "/review"),
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
