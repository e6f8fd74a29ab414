"""A damaged model file: the worker serves an intact version, says so (/healthz, /metrics, the
log), keeps scoring, and heals on its own when the file is restored."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from fraudapp import register_model
from fraudapp.services.serving import registry
from tests.conftest import after_history, predict


def _released_copy_of_v1() -> str:
    """A second version (v1's model under the next number), released: v1 is the older one."""
    reg = registry()
    meta = {k: v for k, v in reg.meta("v1").items() if k not in ("sha256", "version")}
    version = reg.install((reg.path("v1") / "model.txt").read_text(), meta)
    reg.set_current(version)
    return version


def _restart_worker(app) -> None:
    """What a (re)started worker does: a fresh serving model, retrying at every check."""
    app.config["MODEL_RETRY_SECONDS"] = 0.0
    register_model(app)


def _degraded() -> float | None:
    return REGISTRY.get_sample_value("fraudapp_model_degraded")


@pytest.fixture
def damaged(app):
    """v2 released with its model file truncated; the worker restarts. Yields a restore()."""
    released = _released_copy_of_v1()
    model_file = registry().path(released) / "model.txt"
    original = model_file.read_bytes()
    model_file.write_bytes(original[: len(original) // 3])
    _restart_worker(app)
    yield lambda: model_file.write_bytes(original)


def test_a_damaged_released_model_falls_back_says_so_and_heals(
    client, auth, stored_history, damaged, caplog
):
    with caplog.at_level(logging.INFO):
        health = client.get("/healthz")
        assert health.status_code == 200
        body = health.get_json()
        assert (body["status"], body["model_version"], body["released"]) == ("degraded", "v1", "v2")
        assert "v2" in body["problem"] and "checksum" in body["problem"]
        assert _degraded() == 1.0
        assert "fraudapp_model_degraded 1.0" in client.get("/metrics").text

        assert predict(client, auth)["model_version"] == "v1"  # scoring goes on with the fallback
        assert predict(client, auth, customer_id=13)["model_version"] == "v1"
        form = {"tx_datetime": after_history()[:16], "customer_id": "12", "terminal_id": "40"}
        assert client.post("/", data=form | {"amount": "42.50"}).status_code == 302

        damaged()  # the file is restored: no restart, no pointer change
        health = client.get("/healthz").get_json()
        assert (health["status"], health["model_version"]) == ("ok", "v2")
        assert predict(client, auth, customer_id=14)["model_version"] == "v2"
        assert _degraded() == 0.0

    lines = [r.getMessage() for r in caplog.records if r.name == "fraudapp"]
    degraded = [line for line in lines if "cannot be served" in line]
    recovered = [line for line in lines if "loads again" in line]
    assert len(degraded) == 1 and "serving v1 instead" in degraded[0]  # not one per request
    assert len(recovered) == 1 and "v2" in recovered[0]


def test_when_no_version_loads_the_answer_is_503_naming_the_problem(app, client, auth):
    model_file = registry().path("v1") / "model.txt"
    model_file.write_text("tree\n")
    _restart_worker(app)
    health = client.get("/healthz")
    assert health.status_code == 503
    body = health.get_json()
    assert (body["status"], body["model_version"], body["released"]) == ("no model", None, "v1")
    assert "checksum" in body["problem"] and "init-demo" not in body["problem"]
    response = client.post(
        "/api/v1/predictions",
        json={"tx_datetime": after_history(), "customer_id": 1, "terminal_id": 2, "amount": 3.0}
        | {"consent": False},
        headers=auth,
    )
    assert response.status_code == 503
    assert "no model version can be loaded" in response.get_json()["message"]
    assert "init-demo" not in response.get_json()["message"]
    assert _degraded() == 1.0


def test_without_any_version_yet_the_answer_says_how_to_make_one(app, client):
    registry().root.joinpath("CURRENT").unlink()
    _restart_worker(app)
    health = client.get("/healthz")
    assert health.status_code == 503
    assert "flask init-demo" in health.get_json()["problem"]
    assert _degraded() == 0.0
