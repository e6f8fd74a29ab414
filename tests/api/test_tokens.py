"""API tokens are remembered briefly by each worker; a revoked one stops working in time."""

from __future__ import annotations

from sqlalchemy import delete, func, select

from fraudapp.extensions import db
from fraudapp.models import ApiToken, Prediction
from fraudapp.services import tokens


class Clock:
    """A stand-in for time.monotonic that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _model(client, token: str) -> int:
    return client.get("/api/v1/model", headers={"Authorization": f"Bearer {token}"}).status_code


def _delete_elsewhere(name: str) -> None:
    """Revoke the way another process would: this process's memory is not told."""
    db.session.execute(delete(ApiToken).where(ApiToken.name == name))
    db.session.commit()


def test_a_known_token_is_looked_up_once_per_interval(app, client, token, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(tokens, "_now", clock)
    lookups = []
    original = db.session.execute
    monkeypatch.setattr(
        db.session,
        "execute",
        lambda statement, *a, **k: lookups.append(str(statement)) or original(statement, *a, **k),
    )
    for _ in range(5):
        assert _model(client, token) == 200
    assert sum("api_tokens" in sql for sql in lookups) == 1
    clock.now += app.config["API_TOKEN_CACHE_SECONDS"] + 1
    assert _model(client, token) == 200
    assert sum("api_tokens" in sql for sql in lookups) == 2


def test_a_token_revoked_by_another_process_stops_working_within_the_interval(
    app, client, token, monkeypatch
):
    clock = Clock()
    monkeypatch.setattr(tokens, "_now", clock)
    app.config["API_TOKEN_CACHE_SECONDS"] = 2.0
    assert _model(client, token) == 200
    _delete_elsewhere("tests")
    clock.now += 1.0
    assert _model(client, token) == 200  # remembered, for at most the interval
    clock.now += 1.5
    assert _model(client, token) == 401


def test_without_caching_a_revoked_token_stops_at_once(app, client, token):
    app.config["API_TOKEN_CACHE_SECONDS"] = 0
    assert _model(client, token) == 200
    _delete_elsewhere("tests")
    assert _model(client, token) == 401


def test_revoking_here_stops_the_token_here_at_once(app, client, token, runner):
    assert _model(client, token) == 200
    result = runner.invoke(args=["revoke-api-token", "tests"])
    assert result.exit_code == 0 and "revoked" in result.output
    assert _model(client, token) == 401
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0
    again = runner.invoke(args=["revoke-api-token", "tests"])
    assert again.exit_code != 0 and "no token named" in again.output


def test_a_revoked_tokens_predictions_stay(app, client, token, auth, stored_history):
    body = {
        "tx_datetime": "2018-05-15T10:00:00",
        "customer_id": 1,
        "terminal_id": 2,
        "amount": 10.0,
        "consent": True,
    }
    assert client.post("/api/v1/predictions", json=body, headers=auth).status_code == 201
    assert tokens.revoke_token("tests")
    assert db.session.scalar(select(func.count()).select_from(Prediction)) == 1
