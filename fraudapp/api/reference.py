"""The API's own description: the OpenAPI document (GET /api/v1/openapi.json) and the reference
page that renders it (GET /api/docs, Swagger UI served from static/vendor/, no CDN)."""

from __future__ import annotations

import functools
import json

from flask import Blueprint, Response, render_template

from . import bp
from .openapi import document

docs = Blueprint("api_docs", __name__)


@functools.cache
def _document_bytes() -> bytes:
    return json.dumps(document(), separators=(",", ":")).encode()


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document (no token needed), serialized once per process."""
    return Response(_document_bytes(), mimetype="application/json")


@docs.get("/api/docs")
def reference():
    """The human-readable API reference."""
    return render_template("api/docs.html")
