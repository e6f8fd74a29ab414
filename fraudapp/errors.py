"""Error pages, once for the whole app: JSON for API clients, HTML for people."""

from __future__ import annotations

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from .extensions import db


def wants_json() -> bool:
    """API paths and clients that prefer JSON get JSON errors."""
    if current_app.config["ROLE"] == "trainer" or request.path.startswith(
        ("/api/", "/hooks/", "/artifacts/")
    ):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def _respond(error: HTTPException):
    if wants_json():
        return jsonify({"error": error.name, "message": error.description}), error.code
    return render_template("errors/error.html", error=error), error.code


def register(app: Flask) -> None:
    """Attach the handlers; a 500 rolls the session back first."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return _respond(error)

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError):
        db.session.rollback()
        return _respond(error)
