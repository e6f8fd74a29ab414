"""Operations endpoints: /healthz for load balancers and /metrics for Prometheus."""

import os
import time

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from . import telemetry
from .errors import outage, unreachable
from .extensions import db
from .services import serving
from .services.monitoring import alerts

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 with the serving version (and which worker answered), "degraded" with the problem
    while a fallback serves because the released version cannot be loaded; 503 while no model
    serves or the database cannot be reached."""
    state = serving.model_state()
    answer = {"role": current_app.config["ROLE"], "worker": os.getpid()}
    problem = database_problem()
    if problem:
        body = {"status": "database unreachable", "error": problem, "model_version": state.serving}
        retry = str(current_app.config["DATABASE_RETRY_AFTER_SECONDS"])
        return jsonify(body | answer), 503, {"Retry-After": retry}
    if state.serving is None:
        problem = serving.unavailable_reason(state)
        body = {"status": "no model", "model_version": None, "released": state.released}
        return jsonify({**body, "problem": problem, **answer}), 503
    answer |= _challenger()
    if state.degraded:
        body = {"status": "degraded", "model_version": state.serving, "released": state.released}
        return jsonify({**body, "problem": state.problem, **answer})
    return jsonify({"status": "ok", "model_version": state.serving, **answer})


def _challenger() -> dict:
    """The challenger in shadow, and why this worker cannot score with it (it serves the champion
    alone meanwhile); nothing without a shadow."""
    version, problem = serving.challenger_state()
    if version is None:
        return {}
    return {"challenger": version, "challenger_problem": problem}


def database_problem() -> str | None:
    """Why the database does not answer `SELECT 1` (None when it does); asked at most once per
    HEALTH_DATABASE_CHECK_SECONDS per worker, so load balancers polling often do not load it."""
    app = current_app._get_current_object()
    last = app.extensions.get("fraudapp.health_db")
    now = time.monotonic()
    if last and now - last[0] < app.config["HEALTH_DATABASE_CHECK_SECONDS"]:
        return last[1]
    problem = None
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        if not unreachable(exc):
            raise
        outage().failed(exc, refused=False)
        problem = "the database cannot be reached"
    app.extensions["fraudapp.health_db"] = (time.monotonic(), problem)
    return problem


@bp.get("/metrics")
def metrics():
    """Prometheus text format: the workers' instruments and the last monitoring snapshot."""
    model = serving.current_model()
    if model is not None:
        telemetry.record_serving(model.version)
    body = generate_latest(telemetry.process_registry()) + generate_latest(_snapshot_registry())
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def _snapshot_registry() -> CollectorRegistry:
    """The figures of the last monitoring snapshot, read from the database at scrape time."""
    registry = CollectorRegistry()
    snapshots = alerts.latest_snapshots(1)
    f1 = Gauge("fraudapp_monitor_f1", "F1 of the last monitoring snapshot", registry=registry)
    psi = Gauge("fraudapp_monitor_psi_max", "Largest PSI of the last snapshot", registry=registry)
    count = Gauge("fraudapp_monitor_alerts", "Alerts of the last snapshot", registry=registry)
    if snapshots:
        figures = snapshots[0].figures
        f1.set(figures.get("f1") or 0.0)
        psi.set(
            max((d["psi"] for d in figures.get("drift", []) if d["psi"] is not None), default=0.0)
        )
        count.set(len(snapshots[0].alerts))
    return registry
