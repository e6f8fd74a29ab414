"""Error pages, once for the whole app: JSON for API clients, HTML for people.

An unreachable database is one of them: every request it breaks answers 503 with Retry-After (a
load balancer drains the node, a client retries later), and each worker logs one line when an
outage starts and one when the database answers again, not a traceback per request.
"""

from __future__ import annotations

import contextlib
import threading
import time
from urllib.parse import urlsplit

from flask import Flask, current_app, flash, g, jsonify, redirect, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from .extensions import db

EXPIRED = _l("The form expired or lost its security token; please try again.")
UNREACHABLE = _l("The database cannot be reached just now; please try again in a few seconds.")
# The pages' words for HTTP errors (JSON answers keep werkzeug's English names).
NAMES = {
    400: _l("Bad Request"),
    401: _l("Unauthorized"),
    403: _l("Forbidden"),
    404: _l("Not Found"),
    405: _l("Method Not Allowed"),
    413: _l("Request Entity Too Large"),
    429: _l("Too Many Requests"),
    500: _l("Internal Server Error"),
    503: _l("Service Unavailable"),
}
GENERIC = {
    400: _l("The request could not be understood."),
    401: _l("You are not allowed to open this page without logging in."),
    403: _l("Your account is not allowed to open this page."),
    404: _l("There is no page at this address."),
    405: _l("This page does not answer that kind of request."),
    413: _l("The request is larger than this site accepts."),
    429: _l("Too many requests in a short time; please wait a moment and try again."),
    500: _l("Something went wrong on our side. Please try again later."),
    503: _l("The service is not available just now; please try again in a few seconds."),
}


def unreachable(exc: BaseException | None) -> bool:
    """Whether an exception says the database cannot be reached (refused or lost connections,
    timeouts, an exhausted pool), as opposed to a bad statement or bad data."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class Outage:
    """This worker's view of the database: reachable, or down since a time with a count of the
    requests refused meanwhile. Logs once when an outage starts and once when it ends."""

    def __init__(self, logger) -> None:
        self.logger = logger
        self.lock = threading.Lock()
        self.since: float | None = None
        self.refused = 0

    def failed(self, exc: BaseException, refused: bool = True) -> None:
        """A failure to reach the database: the first of an outage is logged, later ones counted."""
        with self.lock:
            first = self.since is None
            if first:
                self.since, self.refused = time.monotonic(), 0
            self.refused += refused
        if first:
            self.logger.error("database unreachable: %s", _first_line(exc))

    def reached(self) -> None:
        """The database answered: ends an outage (logged once with its length and count)."""
        if self.since is None:  # the common case, without taking the lock
            return
        with self.lock:
            if self.since is None:
                return
            lasted, refused = time.monotonic() - self.since, self.refused
            self.since, self.refused = None, 0
        self.logger.warning(
            "database reachable again after %.1f s, %d requests refused", lasted, refused
        )


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0] if text else ''}"


def outage() -> Outage:
    """The current app's outage tracker."""
    return current_app.extensions["fraudapp.outage"]


def watch_database(app: Flask) -> None:
    """Track outages of the app's database: any connection checked out of the pool (after its
    pre-ping) proves the database reachable again."""
    tracker = app.extensions["fraudapp.outage"] = Outage(app.logger)
    with app.app_context():
        event.listen(db.engine, "checkout", lambda *_args: tracker.reached())


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


def _respond(error: HTTPException, template: str = "errors/error.html"):
    """The error as JSON or a page, with the headers the error carries (a 405's Allow, a 401's
    WWW-Authenticate, a Retry-After)."""
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    if wants_json():
        body = jsonify({"error": error.name, "message": str(error.description)})
        return body, error.code, headers
    name, description = page_words(error)
    page = render_template(template, error=error, name=name, description=description)
    return page, error.code, headers


def page_words(error: HTTPException) -> tuple[str, str]:
    """An error's name and explanation in the page's language: werkzeug's stock description
    becomes ours; a description the app gave (already in the page's language) stays."""
    name = NAMES.get(error.code, error.name)
    if error.description == type(error).description and error.code in GENERIC:
        return name, GENERIC[error.code]
    return name, error.description


def _database_unreachable(exc: BaseException):
    """503 with Retry-After, JSON or a page that needs no database; the session is rolled back so
    the pool reconnects on the next request."""
    with contextlib.suppress(Exception):  # the connection is gone already; the pool drops it
        db.session.rollback()
    outage().failed(exc)
    error = ServiceUnavailable(UNREACHABLE)
    body, status, _ = _respond(error, "errors/unavailable.html")
    g.retry_after = str(current_app.config["DATABASE_RETRY_AFTER_SECONDS"])
    return body, status, {"Retry-After": g.retry_after}


def keep_retry_after(app: Flask) -> None:
    """A 503's Retry-After stays the database's: Flask-Limiter, which adds its headers after
    every other after-request function of an API request, would raise it to the end of the rate
    limit's window (a minute). Register before the limiter, so that this runs after it."""

    @app.after_request
    def _database_retry_after(response):
        if "retry_after" in g and response.status_code == 503:
            response.headers["Retry-After"] = g.retry_after
        return response


def register_errorhandlers(app: Flask) -> None:
    """Attach the handlers; a 500 rolls the session back first; an unreachable database is a
    503."""
    watch_database(app)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeoutError)
    def database_error(error: DBAPIError):
        return _database_unreachable(error)

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
        if unreachable(error.original_exception):  # e.g. a dropped connection's DBAPIError
            return _database_unreachable(error.original_exception)
        db.session.rollback()
        return _respond(error)
