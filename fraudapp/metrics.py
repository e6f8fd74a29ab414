"""Prometheus metrics at /metrics.

Under gunicorn, set PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py does) so that every worker's counts
are added up at scrape time; without it (one process) the default registry is used. The figures of
the last monitoring snapshot are read from the database at scrape time.
"""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .services import monitoring

bp = Blueprint("metrics", __name__)

REQUEST_LATENCY = Histogram(
    "fraudapp_request_seconds",
    "Request latency by endpoint",
    ["endpoint", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PREDICTIONS = Counter(
    "fraudapp_predictions_total",
    "Predictions by decision and model version",
    ["decision", "model_version"],
)
LABELS = Counter("fraudapp_labels_total", "Labels given, by source", ["source"])
SERVING = Gauge(
    "fraudapp_serving_model_info",
    "1 for the model version this worker serves",
    ["model_version"],
    multiprocess_mode="liveall",
)


def record_predictions(results) -> None:
    """Count scored transactions."""
    for result in results:
        PREDICTIONS.labels("fraud" if result.is_fraud else "genuine", result.model_version).inc()


def record_label(source: str, n: int = 1) -> None:
    """Count labels given."""
    LABELS.labels(source).inc(n)


def register(app: Flask) -> None:
    """Time every request and serve /metrics."""

    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response):
        if "started" in g:
            REQUEST_LATENCY.labels(request.endpoint or "unknown", request.method).observe(
                time.perf_counter() - g.started
            )
        return response

    app.register_blueprint(bp)


@bp.get("/metrics")
def metrics():
    """Prometheus text format."""
    model = current_app.extensions["fraudapp.model"].get()
    if model is not None:
        SERVING.clear()
        SERVING.labels(model.version).set(1)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry) + generate_latest(_snapshot_registry())
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def _snapshot_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    snapshots = monitoring.latest_snapshots(1)
    f1 = Gauge("fraudapp_monitor_f1", "F1 of the last monitoring snapshot", registry=registry)
    psi = Gauge("fraudapp_monitor_psi_max", "Largest PSI of the last snapshot", registry=registry)
    alerts = Gauge("fraudapp_monitor_alerts", "Alerts of the last snapshot", registry=registry)
    if snapshots:
        figures = snapshots[0].figures
        f1.set(figures.get("f1") or 0.0)
        psi.set(
            max((d["psi"] for d in figures.get("drift", []) if d["psi"] is not None), default=0.0)
        )
        alerts.set(len(snapshots[0].alerts))
    return registry
