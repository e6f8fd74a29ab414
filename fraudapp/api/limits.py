"""Rate limits of the API: per token for authenticated requests, per client address for the rest.

The bearer token is looked up once per request (here, before the limits are checked) and kept on
`g`; `token_required` reads the same answer. A valid token is counted against API_RATE_LIMIT under
its own key, wherever it comes from; a missing or wrong token against API_ADDRESS_RATE_LIMIT under
the client's address, so a flood of guesses is cut short without touching real clients.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, request
from flask_limiter.util import get_remote_address

from ..extensions import limiter
from ..models import ApiToken
from ..services import tokens


def request_token() -> ApiToken | None:
    """The owner of the request's bearer token, or None (looked up once per request)."""
    if "api_token_checked" not in g:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        g.api_token_checked = True
        g.api_token = tokens.verify_token(token.strip()) if scheme.lower() == "bearer" else None
    return g.api_token


def _token_key() -> str:
    return f"token:{request_token().id}"


def _address_key() -> str:
    return f"address:{get_remote_address()}"


def apply(bp: Blueprint) -> None:
    """Put the two limits on every route of the API blueprint."""
    limiter.limit(
        lambda: current_app.config["API_RATE_LIMIT"],
        key_func=_token_key,
        exempt_when=lambda: request_token() is None,
        scope="api-token",
    )(bp)
    limiter.limit(
        lambda: current_app.config["API_ADDRESS_RATE_LIMIT"],
        key_func=_address_key,
        exempt_when=lambda: request_token() is not None,
        scope="api-address",
    )(bp)
