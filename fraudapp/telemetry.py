"""Prometheus instruments: request latency, predictions, labels, the serving version and whether
the released version cannot be served.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py) makes every worker write its
counts to files that /metrics adds up at scrape time; without it the default registry is used.
"""

from __future__ import annotations

import os
import time

from flask import Flask, g, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from .ml.registry import ServingState

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
MODEL_DEGRADED = Gauge(
    "fraudapp_model_degraded",
    "1 while this worker cannot serve the released model version (a fallback or nothing serves)",
    multiprocess_mode="liveall",
)


def record_predictions(results) -> None:
    """Count scored transactions."""
    for result in results:
        PREDICTIONS.labels("fraud" if result.is_fraud else "genuine", result.model_version).inc()


def record_scored(version: str, flagged: int, total: int) -> None:
    """Count the transactions of a scored file."""
    PREDICTIONS.labels("fraud", version).inc(flagged)
    PREDICTIONS.labels("genuine", version).inc(total - flagged)


def record_label(source: str, n: int = 1) -> None:
    """Count labels given."""
    LABELS.labels(source).inc(n)


def record_serving(version: str) -> None:
    """Mark the version this worker serves."""
    SERVING.clear()
    SERVING.labels(version).set(1)


def record_model_state(state: ServingState) -> None:
    """Mark whether this worker is degraded (called when its serving state changes)."""
    MODEL_DEGRADED.set(1 if state.degraded else 0)


def process_registry() -> CollectorRegistry:
    """Every worker's instruments (multiprocess mode), else this process's."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def time_requests(app: Flask) -> None:
    """Observe every request's latency by endpoint."""

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
