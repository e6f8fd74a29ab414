"""Model distribution over HTTP: a node's webhook receiver and the trainer's artifact endpoint."""

from flask import Blueprint, abort, jsonify, request

from .ml.registry import RegistryError
from .services.distribution import catalog, receiver
from .signing import HEADER

hooks = Blueprint("hooks", __name__)
artifacts = Blueprint("artifacts", __name__)


@hooks.post("/hooks/model-published")
def model_published():
    """A signed model.published delivery: install the version and serve it (see DESIGN.md)."""
    status, answer = receiver.receive(
        request.headers.get(HEADER), request.get_data(), request.remote_addr
    )
    return jsonify(answer), status


@artifacts.get("/artifacts/<version>")
def artifact(version: str):
    """A version's metadata and model text, for nodes holding a webhook secret (the request is
    signed over its path and `?nonce=`, and works once)."""
    header, nonce = request.headers.get(HEADER), request.args.get("nonce")
    if not receiver.artifact_request_authentic(header, request.path, nonce):
        abort(401)
    try:
        return jsonify(catalog.artifact(version))
    except RegistryError:
        abort(404)
