"""The OpenAPI document: valid OpenAPI 3.1, built from the models that validate requests, every
API route in it, its examples and the app's real answers valid against its schemas; the
reference page that renders it."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from fraudapp.api.openapi import REF, document
from fraudapp.api.schemas import TransactionBody
from fraudapp.services.transactions.limits import MAX_AMOUNT
from tests.conftest import after_history

BASE = "urn:fraudapp:openapi"
REGISTRY = Registry().with_resource(
    BASE, Resource.from_contents(document(), default_specification=DRAFT202012)
)


def _valid(instance, schema: dict) -> None:
    """Validate against a schema of the document (its $refs resolve inside it)."""
    schema = json.loads(json.dumps(schema).replace('"#/components/', f'"{BASE}#/components/'))
    Draft202012Validator(schema, registry=REGISTRY).validate(instance)


def _answer(response, status: int, path: str, method: str) -> None:
    """A real answer: the expected status, documented for the operation, with a body valid
    against that status's schema and the headers it documents."""
    assert response.status_code == status, (path, response.status_code, response.data[:200])
    documented = document()["paths"][path][method]["responses"]
    schema = documented[str(status)]["content"]["application/json"]["schema"]
    _valid(response.get_json(), schema)
    for header in documented[str(status)].get("headers", {}):
        assert header in response.headers, (path, status, header)


def test_the_document_is_valid_openapi_and_built_once():
    validate(document())
    assert document() is document()


def test_the_schemas_are_the_request_models():
    schemas = document()["components"]["schemas"]
    generated = TransactionBody.model_json_schema(ref_template=REF)
    assert schemas["TransactionBody"] == generated
    assert schemas["TransactionBody"]["properties"]["amount"]["maximum"] == MAX_AMOUNT


def test_it_is_served_without_a_token(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == document()


def test_every_api_route_is_documented(app):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    paths = document()["paths"]
    documented = {(p, m) for p, ops in paths.items() if p.startswith("/api/v1/") for m in ops}
    assert routes == documented


def _examples():
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            bodies = [operation.get("requestBody", {})] + list(operation["responses"].values())
            for body in bodies:
                content = body.get("content", {}).get("application/json", {})
                for name, example in content.get("examples", {}).items():
                    yield pytest.param(
                        example["value"], content["schema"], id=f"{method}{path}:{name}"
                    )


@pytest.mark.parametrize(("value", "schema"), list(_examples()))
def test_every_example_is_valid(value, schema):
    _valid(value, schema)


def test_real_answers_match_the_document(client, auth, stored_history):
    post = "/api/v1/predictions"
    feedback = "/api/v1/predictions/{prediction_id}/feedback"
    tx = {"tx_datetime": after_history(), "customer_id": 12, "terminal_id": 40, "amount": 42.5}
    tx |= {"consent": True, "transaction_id": "doc-1"}
    first = client.post(f"{post}?explain=true", json=tx, headers=auth)
    _answer(first, 201, post, "post")
    _answer(client.post(post, json=tx, headers=auth), 200, post, "post")  # a replay
    batch = {"transactions": [tx | {"transaction_id": None}] * 2}
    _answer(client.post(f"{post}?explain=1", json=batch, headers=auth), 201, post, "post")
    _answer(client.post(post, json=tx | {"amount": 1.0}, headers=auth), 409, post, "post")
    _answer(client.post(post, json={"amount": -1}, headers=auth), 400, post, "post")
    _answer(client.post(post, json=tx), 401, post, "post")
    _answer(client.post(post, data=b"0" * 3_000_000, headers=auth), 413, post, "post")
    prediction = first.get_json()["id"]
    url = f"/api/v1/predictions/{prediction}/feedback"
    unknown = f"/api/v1/predictions/{prediction + 1000}/feedback"
    _answer(client.post(url, json={"label": "fraud"}, headers=auth), 201, feedback, "post")
    _answer(client.post(url, json={}, headers=auth), 400, feedback, "post")
    _answer(client.post(unknown, json={"correct": True}, headers=auth), 404, feedback, "post")
    _answer(client.get("/api/v1/model", headers=auth), 200, "/api/v1/model", "get")
    _answer(client.get("/healthz"), 200, "/healthz", "get")


def test_the_reference_page_loads_its_files_from_the_site(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    files = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in files
    assert "/static/api-docs.js" in files
    for path in files:
        response = client.get(path)
        assert response.status_code == 200, path
        response.close()
    assert 'data-url="/api/v1/openapi.json"' in page.text
    assert "<script>" not in page.text  # no inline script
