"""Operations endpoints: /healthz for load balancers and /metrics for Prometheus."""

import os

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from . import telemetry
from .services import serving
from .services.monitoring import alerts

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 with the serving version (and which worker answered), "degraded" with the problem
    while a fallback serves because the released version cannot be loaded; 503 while no model
    serves."""
    state = serving.model_state()
    answer = {"role": current_app.config["ROLE"], "worker": os.getpid()}
    if state.serving is None:
        problem = serving.unavailable_reason(state)
        body = {"status": "no model", "model_version": None, "released": state.released}
        return jsonify({**body, "problem": problem, **answer}), 503
    if state.degraded:
        body = {"status": "degraded", "model_version": state.serving, "released": state.released}
        return jsonify({**body, "problem": state.problem, **answer})
    return jsonify({"status": "ok", "model_version": state.serving, **answer})


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
