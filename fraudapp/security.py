"""HTTP hardening for every response and request: security headers and the body size limit.

Headers come from Flask-Talisman: a Content-Security-Policy that allows scripts, styles, images
and fetches from this site only (no inline script or style; the pages keep their data in
`<script type="application/json">` islands and their behaviour in static/*.js), no framing
(frame-ancestors 'none' and X-Frame-Options DENY), nosniff, a strict-origin referrer, and HSTS
only when the session cookie is marked secure (the site is then served over HTTPS). There is no
redirect to HTTPS: `make run` serves plain http://127.0.0.1:8000, and behind a proxy TLS ends
there. Talisman keeps its settings on the instance, so each app gets its own.

Both run on every request, so what does not change between requests is worked out once: the
headers' options and policy text per view (`Talisman`), and the session of a request without a
session cookie is an empty one without building a cookie signer (`SessionInterface`; the JSON API's
clients send none).

The API's rate limits live with the API (api/limits.py).
"""

from __future__ import annotations

import os
import tempfile

import flask_talisman
from flask import Flask, current_app, request
from flask import Request as FlaskRequest
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import RequestEntityTooLarge

CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": ["'self'", "data:"],  # Bootstrap draws form controls with data: SVG images
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def register(app: Flask) -> None:
    """Security headers on every response; bodies over MAX_CONTENT_LENGTH refused up front."""
    secure = bool(app.config["SESSION_COOKIE_SECURE"])
    app.extensions["fraudapp.talisman"] = Talisman(
        app,
        force_https=False,
        strict_transport_security=secure,
        content_security_policy=CONTENT_SECURITY_POLICY,
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
        session_cookie_secure=secure,
        session_cookie_http_only=True,
        session_cookie_samesite=app.config["SESSION_COOKIE_SAMESITE"],
        x_xss_protection=False,  # obsolete; the CSP is the protection
    )
    app.request_class = Request
    app.session_interface = SessionInterface()
    # first of all, before CSRF or the rate limits read the body or the database
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_large_body)


class Talisman(flask_talisman.Talisman):
    """Flask-Talisman with its per-request work done once: it gathers a view's options (its own
    over the app's) three times per request and rebuilds the policy header's text from the policy
    each time. Both depend only on the view and the settings, fixed once the app is built; the
    text is kept unless the request carries a nonce (none here: no nonce is configured).
    """

    def __init__(self, app: Flask, **options):
        self._view_options: dict = {}
        self._policy_texts: dict[int, tuple[object, str]] = {}
        super().__init__(app, **options)

    def _get_local_options(self) -> dict:
        view = current_app.view_functions.get(request.endpoint)
        options = self._view_options.get(view)
        if options is None:
            options = self._view_options[view] = super()._get_local_options()
        return options

    def _parse_policy(self, policy) -> str:
        if hasattr(request, "csp_nonce"):
            return super()._parse_policy(policy)
        kept = self._policy_texts.get(id(policy))
        if kept is None or kept[0] is not policy:
            kept = self._policy_texts[id(policy)] = (policy, super()._parse_policy(policy))
        return kept[1]


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without building the cookie signer for a request that
    carries no session cookie (an empty session, as Flask gives it) nor working out the cookie's
    attributes for an empty session nobody changed (no cookie is set, as in Flask)."""

    def open_session(self, app: Flask, request: FlaskRequest):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        if not session and not session.modified:
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)


class Request(FlaskRequest):
    """Flask's request, with two changes for uploads:

    - in a view with its own body limit and spool folder (`body_limit`), uploaded files are
      spooled to a temporary file in that folder, not to the system's temporary folder (often a
      tmpfs, that is memory) nor, under 500 kB, to memory;
    - every upload file the form parser opened is closed when the request ends: werkzeug closes
      those of a parsed form, not the one it was writing when a body over the limit cut the
      parsing short (left to the garbage collector, with a ResourceWarning).
    """

    spool_dir: str | None = None

    def _get_file_stream(
        self, total_content_length, content_type, filename=None, content_length=None
    ):
        if self.spool_dir is not None:
            os.makedirs(self.spool_dir, exist_ok=True)
            stream = tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix=".upload-")
        else:
            stream = super()._get_file_stream(
                total_content_length, content_type, filename, content_length
            )
        self.__dict__.setdefault("_upload_streams", []).append(stream)
        return stream

    def close(self) -> None:
        for stream in self.__dict__.pop("_upload_streams", []):
            stream.close()
        super().close()


def body_limit(setting: str, spool_to: str | None = None):
    """Give a view its own request body limit, the setting named `setting` (an upload page's
    larger one), instead of MAX_CONTENT_LENGTH; its uploads are spooled to the folder the setting
    `spool_to` names."""

    def decorator(view):
        view.body_limit_setting = setting
        view.body_spool_setting = spool_to
        return view

    return decorator


def _own_body_limit() -> bool:
    """Whether this request's view has its own body limit; if so, werkzeug's form parser is
    given it (Flask >= 3.1 lets a request carry its own max_content_length)."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    setting = getattr(view, "body_limit_setting", None)
    if setting is not None:
        request.max_content_length = current_app.config[setting]
        spool = getattr(view, "body_spool_setting", None)
        request.spool_dir = current_app.config[spool] if spool else None
    return setting is not None


def refuse_large_body() -> None:
    """413 before anything parses a body over the limit (MAX_CONTENT_LENGTH, or the view's own).

    A declared Content-Length over the limit is refused unread. A chunked body has no length:
    it is read here up to the limit (and kept for the view); werkzeug stops at the limit without
    an error, so a body that reaches it is refused too. A view with its own (large) limit reads
    its chunked body itself, streaming: werkzeug's form parser raises 413 at that limit.
    """
    own = _own_body_limit()
    limit = request.max_content_length
    if limit is None:
        return
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge(f"the request body is over the limit of {limit} bytes")
    if own:
        return
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        request.get_data()
        if getattr(request.stream, "is_exhausted", False):
            raise RequestEntityTooLarge(f"the request body reaches the limit of {limit} bytes")
