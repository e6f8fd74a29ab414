"""API routes: score one transaction or a list, give feedback, and describe the serving model."""

from __future__ import annotations

from functools import wraps

from flask import current_app, g, jsonify, request

from .. import jsonbody
from ..services import serving
from ..services.transactions import labels, scoring
from . import bp
from .limits import request_token
from .schemas import BadRequest, BatchBody, FeedbackBody, TransactionBody, parse, parse_flag


def token_required(view):
    """401 unless the request carries a known bearer token."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if request_token() is None:
            response = jsonify(
                {"error": "Unauthorized", "message": "a valid bearer token is required"}
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="fraudapp"'
            return response, 401
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
    """A transaction_id stored already with other details, or by another client: 409."""
    field = "transaction_id"
    if g.get("batch"):
        field = f"transactions.{error.index}.transaction_id"
    message = "another transaction with this id is already stored"
    return jsonify({"errors": {field: [message]}}), 409


def _json_body():
    """The request body parsed as JSON (nesting limited), or BadRequest naming the body."""
    try:
        return jsonbody.loads(request.get_data(), current_app.config["JSON_MAX_DEPTH"])
    except jsonbody.NotJSON as exc:
        raise BadRequest({"body": [str(exc)]}) from None


@bp.post("/predictions")
@token_required
def create_predictions():
    """Score `{transaction}` or `{"transactions": [...]}`; `?explain=true` adds the reasons.

    201 when something was scored; 200 when every transaction was a replay of a stored
    `transaction_id` (answered from storage).
    """
    body = _json_body()
    explain = parse_flag("explain", request.args.getlist("explain"))
    token_id = g.api_token.id
    if isinstance(body, dict) and "transactions" in body:
        g.batch = True
        batch = parse(BatchBody, body)
        items = [item.to_input() for item in batch.transactions]
        results = scoring.score_batch(items, explain, token_id)
        body = {"predictions": [r.as_json(explain) for r in results]}
        return jsonify(body), _created_or_replayed(results)
    tx, consent = parse(TransactionBody, body).to_input()
    result = scoring.score(tx, consent, explain, token_id)
    return jsonify(result.as_json(explain)), _created_or_replayed([result])


def _created_or_replayed(results: list[scoring.Scored]) -> int:
    return 200 if all(result.replayed for result in results) else 201


@bp.post("/predictions/<id:prediction_id>/feedback")
@token_required
def prediction_feedback(prediction_id: int):
    """`{"correct": bool}` or `{"label": "fraud"|"genuine"}` on a stored prediction this token
    made (or any, for a token with the "all" scope); another's is 404 like an unknown id."""
    body = parse(FeedbackBody, _json_body())
    try:
        label = labels.give_feedback(
            prediction_id, f"api:{g.api_token.name}", body.correct, body.label, g.api_token
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
