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
from ..services import tokens

_ENVIRON_KEY = "fraudapp.api_token"


def request_token() -> tokens.TokenOwner | None:
    """The owner of the request's bearer token, or None; looked up once per request (kept in the
    request's environ) and set as `g.api_token` for the views."""
    if _ENVIRON_KEY not in request.environ:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        owner = tokens.verify_token(token.strip()) if scheme.lower() == "bearer" else None
        request.environ[_ENVIRON_KEY] = owner
    g.api_token = request.environ[_ENVIRON_KEY]
    return g.api_token


def _token_key() -> str:
    return f"token:{request_token().id}"


def _address_key() -> str:
    return f"address:{get_remote_address()}"


def apply(bp: Blueprint) -> None:
    """Put the two limits on the API blueprint, each shared by all of its routes."""
    limiter.shared_limit(
        lambda: current_app.config["API_RATE_LIMIT"],
        "api-token",
        key_func=_token_key,
        exempt_when=lambda: request_token() is None,
    )(bp)
    limiter.shared_limit(
        lambda: current_app.config["API_ADDRESS_RATE_LIMIT"],
        "api-address",
        key_func=_address_key,
        exempt_when=lambda: request_token() is not None,
    )(bp)
