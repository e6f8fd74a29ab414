"""Error pages, once for the whole app: JSON for API clients, HTML for people."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, current_app, flash, jsonify, redirect, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from .extensions import db

EXPIRED = "The form expired or lost its security token; please try again."


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


def register_errorhandlers(app: Flask) -> None:
    """Attach the handlers; a 500 rolls the session back first."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return _respond(error)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        """A form posted without a valid CSRF token: back to the page it came from, saying so."""
        current_app.logger.info("CSRF check failed on %s: %s", request.path, error.description)
        referrer = urlsplit(request.referrer or "")
        if wants_json() or referrer.netloc != request.host or not referrer.path:
            error.description = EXPIRED
            return _respond(error)
        flash(EXPIRED, "error")
        return redirect(referrer.path + (f"?{referrer.query}" if referrer.query else ""))

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError):
        db.session.rollback()
        return _respond(error)
