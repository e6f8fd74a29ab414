"""API routes: score one transaction or a list, and describe the serving model."""

from __future__ import annotations

from functools import wraps

from flask import g, jsonify, request

from ..services import serving, tokens
from ..services.transactions import labels, scoring
from . import bp
from .schemas import BadRequest, BatchBody, FeedbackBody, TransactionBody, parse


def token_required(view):
    """401 unless the request carries a known bearer token."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        owner = tokens.verify_token(token.strip()) if scheme.lower() == "bearer" else None
        if owner is None:
            response = jsonify(
                {"error": "Unauthorized", "message": "a valid bearer token is required"}
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="fraudapp"'
            return response, 401
        g.api_token = owner
        return view(*args, **kwargs)

    return wrapped


@bp.errorhandler(BadRequest)
def bad_request(error: BadRequest):
    """Field errors as 400."""
    return jsonify({"errors": error.errors}), 400


@bp.errorhandler(serving.ModelUnavailable)
def model_unavailable(error: serving.ModelUnavailable):
    """No model is serving: 503, try again later."""
    return jsonify({"error": "Service Unavailable", "message": str(error)}), 503


@bp.errorhandler(scoring.DuplicateTransaction)
def duplicate(error: scoring.DuplicateTransaction):
    """A transaction_id that is already stored."""
    return jsonify(
        {"errors": {"transaction_id": ["a transaction with this id is already stored"]}}
    ), 400


@bp.post("/predictions")
@token_required
def create_predictions():
    """Score `{transaction}` or `{"transactions": [...]}`; `?explain=true` adds the reasons."""
    body = request.get_json(force=True, silent=True)
    explain = request.args.get("explain", "").lower() in ("1", "true", "yes")
    if isinstance(body, dict) and "transactions" in body:
        batch = parse(BatchBody, body)
        results = scoring.score_batch([item.to_input() for item in batch.transactions], explain)
        return jsonify({"predictions": [r.as_json(explain) for r in results]}), 201
    tx, consent = parse(TransactionBody, body).to_input()
    return jsonify(scoring.score(tx, consent, explain).as_json(explain)), 201


@bp.post("/predictions/<id:prediction_id>/feedback")
@token_required
def prediction_feedback(prediction_id: int):
    """`{"correct": bool}` or `{"label": "fraud"|"genuine"}` on a stored prediction."""
    body = parse(FeedbackBody, request.get_json(force=True, silent=True))
    try:
        label = labels.give_feedback(
            prediction_id, f"api:{g.api_token.name}", body.correct, body.label
        )
    except labels.NotFound:
        return jsonify({"error": "Not Found", "message": "no stored prediction has this id"}), 404
    return jsonify(
        {
            "prediction_id": prediction_id,
            "label": "fraud" if label.fraud else "genuine",
            "source": label.source,
        }
    ), 201


@bp.get("/model")
@token_required
def model_info():
    """The serving version and its metadata."""
    model = serving.serving_model()
    return jsonify({"version": model.version, "threshold": model.threshold, "meta": model.meta})
