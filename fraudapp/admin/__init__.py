"""Admin pages: the monitoring dashboard, threshold tuning, the audit log, CSV exports, training
runs and the model registry."""

from flask import Blueprint

bp = Blueprint("admin", __name__)

from . import nodes, runs, views  # noqa: E402,F401  (routes attach to bp)
