"""The OpenAPI 3.1 document of the JSON API, built from the pydantic models that validate its
requests (schemas.py) and describe its answers (responses.py) — never written by hand — and
served at /api/v1/openapi.json; the reference page at /api/docs renders it.

The document is built once per process, on first use.
"""

from __future__ import annotations

import functools
from importlib import metadata

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ..services.transactions.limits import MAX_ROW_ID
from . import responses
from .schemas import FLAG_FALSE, FLAG_TRUE, BatchBody, FeedbackBody, TransactionBody

REF = "#/components/schemas/{model}"
PREFIX = "/api/v1"
REQUESTS = (TransactionBody, BatchBody, FeedbackBody)
ANSWERS = (
    responses.Prediction,
    responses.Predictions,
    responses.FeedbackResult,
    responses.ModelInfo,
    responses.FieldErrors,
    responses.Error,
    responses.Health,
)
# the spellings of ?explain= the document lists (any case is accepted; Python's requests sends True)
FLAGS = [*FLAG_TRUE, *FLAG_FALSE, "True", "False"]

TRANSACTION = {
    "tx_datetime": "2026-11-27T10:00:00Z",
    "customer_id": "cus_8f2aQ",
    "terminal_id": "MID-00042",
    "amount": 412.5,
    "consent": True,
    "transaction_id": "abc-1",
}
PREDICTION = {
    "id": 1,
    "score": 0.993,
    "is_fraud": True,
    "threshold": 0.43,
    "model_version": "v1",
    "stored": True,
    "receipt": "Ez2mG1P0x4c8",
    "replayed": False,
}
REPLAYED = PREDICTION | {"replayed": True, "receipt": None}
EXPLAINED = PREDICTION | {
    "features": {"TX_AMOUNT": 412.5, "TX_DURING_WEEKEND": 0.0, "TX_DURING_NIGHT": 0.0},
    "explanation": [
        {
            "feature": "TX_AMOUNT",
            "value": 412.5,
            "contribution": 3.1,
            "text": "Amount (412.50) raised the risk",
        }
    ],
}
ERRORS = {
    "bad_field": {
        "summary": "a field is out of range",
        "value": {"errors": {"amount": ["Input should be less than or equal to 1000000"]}},
    },
    "bad_item": {
        "summary": "an item of a list is wrong",
        "value": {"errors": {"transactions.3.customer_id": ["Field required"]}},
    },
    "not_json": {"summary": "the body is not JSON", "value": {"errors": {"body": ["not JSON"]}}},
}


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict, examples: dict | None = None) -> dict:
    """A response or request body of JSON content."""
    content = {"schema": schema} | ({"examples": examples} if examples else {})
    return {"content": {"application/json": content}}


def _error(description: str, error: str, message: str, header: str | None = None) -> dict:
    """A refusal with an {"error", "message"} body (and a header it always carries)."""
    example = {"error": {"value": {"error": error, "message": message}}}
    answer = {"description": description} | _json(_ref(responses.Error), example)
    if header:
        answer["headers"] = {header: {"required": True, "schema": {"type": "string"}}}
    return answer


COMMON = {
    "401": _error(
        "missing or unknown bearer token",
        "Unauthorized",
        "a valid bearer token is required",
        "WWW-Authenticate",
    ),
    "413": _error(
        "body over the size limit (FRAUDAPP_MAX_CONTENT_LENGTH)",
        "Request Entity Too Large",
        "the request body is over the limit of 2097152 bytes",
    ),
    "429": _error(
        "over the rate limit (FRAUDAPP_API_RATE_LIMIT per token, FRAUDAPP_API_ADDRESS_RATE_LIMIT "
        "per address without a valid token); see Retry-After",
        "Too Many Requests",
        "6000 per 1 minute",
        "Retry-After",
    ),
    "503": _error(
        "no model serves yet, or the database cannot be reached (then with Retry-After)",
        "Service Unavailable",
        "The database cannot be reached just now; please try again in a few seconds.",
    ),
}
BAD_INPUT = {"description": "bad input: messages per field"} | _json(
    _ref(responses.FieldErrors), ERRORS
)


EXPLAIN = {
    "name": "explain",
    "in": "query",
    "required": False,
    "description": "`true` adds `features` and `explanation` to every result (case does not "
    "matter; another value is a field error)",
    "schema": {"type": "string", "enum": FLAGS, "default": "false"},
}
SCORED = {
    "one": {"value": PREDICTION},
    "explained": {"summary": "?explain=true", "value": EXPLAINED},
    "list": {"value": {"predictions": [PREDICTION, PREDICTION | {"id": 2}]}},
}
CONFLICT = {"errors": {"transaction_id": ["another transaction with this id is already stored"]}}


def _operation(operation_id: str, tag: str, summary: str, answers: dict, **more) -> dict:
    """An operation: its id, tag, summary, other fields (`requestBody`, ...) and answers."""
    return {"operationId": operation_id, "tags": [tag], "summary": summary, **more} | {
        "responses": answers
    }


def _predictions() -> dict:
    """POST /api/v1/predictions."""
    answer = {"oneOf": [_ref(responses.Prediction), _ref(responses.Predictions)]}
    body = {"oneOf": [_ref(TransactionBody), _ref(BatchBody)]}
    two = {"transactions": [TRANSACTION, TRANSACTION | {"amount": 7.9}]}
    examples = {
        "one": {"summary": "one transaction", "value": TRANSACTION},
        "list": {"summary": "a list", "value": two},
    }
    answers = {
        "201": {"description": "scored (and stored where consent was given)"}
        | _json(answer, SCORED),
        "200": {"description": "every transaction replayed a stored `transaction_id`"}
        | _json(answer, {"replay": {"value": REPLAYED}}),
        "400": BAD_INPUT,
        "409": {"description": "a `transaction_id` stored with other details or by another token"}
        | _json(_ref(responses.FieldErrors), {"conflict": {"value": CONFLICT}}),
    } | COMMON
    return _operation(
        "createPredictions",
        "predictions",
        "Score one transaction or a list of up to 1,000",
        answers,
        description="A list is scored in order, each transaction seeing the stored ones before "
        "it. A consented request with a `transaction_id` is safe to retry: sent again by the "
        "same token with the same details it is answered from storage (200).",
        parameters=[EXPLAIN],
        requestBody={"required": True} | _json(body, examples),
    )


PREDICTION_ID = {
    "name": "prediction_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID},
    "example": 1,
}
LABELLED = {"prediction_id": 1, "label": "fraud", "source": "api:bank"}
FEEDBACK = {"correct": {"value": {"correct": False}}, "label": {"value": {"label": "fraud"}}}
MODEL = {
    "version": "v1",
    "threshold": 0.43,
    "meta": {"features": ["TX_AMOUNT", "TX_DURING_WEEKEND"], "threshold": 0.43},
}


def _feedback() -> dict:
    """POST /api/v1/predictions/{prediction_id}/feedback."""
    answers = {
        "201": {"description": "the label is stored"}
        | _json(_ref(responses.FeedbackResult), {"stored": {"value": LABELLED}}),
        "400": BAD_INPUT,
        "404": _error(
            "no stored prediction has this id (or another token made it)",
            "Not Found",
            "no stored prediction has this id",
        ),
    } | COMMON
    return _operation(
        "giveFeedback",
        "predictions",
        "Say whether a prediction was correct, or give the true label",
        answers,
        description="On a prediction this token made (any, for a token created with "
        "`--all-predictions`).",
        parameters=[PREDICTION_ID],
        requestBody={"required": True} | _json(_ref(FeedbackBody), FEEDBACK),
    )


def _model() -> dict:
    """GET /api/v1/model."""
    answers = {
        "200": {"description": "the serving version"}
        | _json(_ref(responses.ModelInfo), {"v1": {"value": MODEL}}),
    } | COMMON
    return _operation(
        "getModel", "model", "The serving model version, its threshold and its metadata", answers
    )


def _document_itself() -> dict:
    """GET /api/v1/openapi.json."""
    answers = {
        "200": {"description": "the OpenAPI document"} | _json({"type": "object"}),
        "429": COMMON["429"],
    }
    return _operation("getOpenAPI", "service", "This document", answers, security=[])


def _healthz() -> dict:
    """GET /healthz."""
    health = _json(_ref(responses.Health))
    answers = {
        "200": {"description": "serving (`ok`, or `degraded` while a fallback serves)"} | health,
        "503": {"description": "no model serves, or the database cannot be reached"} | health,
    }
    return _operation(
        "getHealth",
        "service",
        "Whether this node serves a model and reaches its database",
        answers,
        description="For load balancers: 503 drains the node. Not rate limited.",
        security=[],
    )


def _components() -> dict:
    """Every model's JSON schema under components/schemas, requests as validated, answers as
    written."""
    models = [(m, "validation") for m in REQUESTS] + [(m, "serialization") for m in ANSWERS]
    _, definitions = models_json_schema(models, ref_template=REF)
    return {
        "schemas": definitions["$defs"],
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "`flask --app fraudapp create-api-token NAME` prints one",
            }
        },
    }


@functools.cache
def document() -> dict:
    """The OpenAPI document (built once; do not modify the dict returned)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fraudapp API",
            "version": metadata.version("fraudapp"),
            "description": "Fraud screening of card transactions. Bad input is 400 with "
            '`{"errors": {field: [messages]}}`; other refusals carry '
            '`{"error", "message"}`.',
        },
        "security": [{"bearer": []}],
        "tags": [
            {"name": "predictions", "description": "Score transactions, give feedback"},
            {"name": "model", "description": "The model serving this node"},
            {"name": "service", "description": "This document, and health for load balancers"},
        ],
        "paths": {
            f"{PREFIX}/predictions": {"post": _predictions()},
            f"{PREFIX}/predictions/{{prediction_id}}/feedback": {"post": _feedback()},
            f"{PREFIX}/model": {"get": _model()},
            f"{PREFIX}/openapi.json": {"get": _document_itself()},
            "/healthz": {"get": _healthz()},
        },
        "components": _components(),
    }
