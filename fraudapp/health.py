"""Liveness for load balancers: /healthz answers with the serving model version."""

import os

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 with the serving version (and which worker answered); 503 while no model serves."""
    model = current_app.extensions["fraudapp.model"].get()
    answer = {"role": current_app.config["ROLE"], "worker": os.getpid()}
    if model is None:
        return jsonify({"status": "no model", "model_version": None, **answer}), 503
    return jsonify({"status": "ok", "model_version": model.version, **answer})
