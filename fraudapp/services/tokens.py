"""API bearer tokens: created once, shown once, stored as sha256.

A token's scope says whose stored predictions it may give feedback on: "own" (the predictions it
made; the default) or "all" (every one, including the web form's).

Each worker remembers a valid token for API_TOKEN_CACHE_SECONDS, so a client's requests do not
look it up every time: a revoked token stops working in the worker that revoked it at once, and
in every other worker within that time.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, select

from ..extensions import db
from ..models import TOKEN_SCOPES, ApiToken

_CACHE = "fraudapp.token_cache"
_CACHE_SIZE = 1024  # tokens remembered per worker (all forgotten when full)
_now = time.monotonic


@dataclass(frozen=True)
class TokenOwner:
    """Who a valid token belongs to, as the API needs it (not tied to a database session)."""

    id: int
    name: str
    scope: str


class TokenExists(Exception):
    """A token with this name exists already."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(name: str, scope: str = "own") -> str:
    """A new token for `name` with a feedback scope ("own" or "all"); the plain token is returned
    and never stored."""
    if scope not in TOKEN_SCOPES:
        raise ValueError(f"unknown token scope {scope!r}")
    if db.session.scalar(select(ApiToken.id).where(ApiToken.name == name)):
        raise TokenExists(name)
    token = "fa_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(name=name, token_hash=_digest(token), scope=scope))
    db.session.commit()
    return token


def verify_token(token: str) -> TokenOwner | None:
    """The token's owner, or None when the token is unknown (or revoked)."""
    if not token:
        return None
    digest, now = _digest(token), _now()
    cache: dict[str, tuple[float, TokenOwner]] = current_app.extensions.setdefault(_CACHE, {})
    cached = cache.get(digest)
    if cached is not None and cached[0] > now:
        return cached[1]
    row = db.session.execute(
        select(ApiToken.id, ApiToken.name, ApiToken.scope).where(ApiToken.token_hash == digest)
    ).first()
    if row is None:
        cache.pop(digest, None)
        return None
    owner = TokenOwner(*row)
    ttl = float(current_app.config["API_TOKEN_CACHE_SECONDS"])
    if ttl > 0:
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[digest] = (now + ttl, owner)
    return owner


def revoke_token(name: str) -> bool:
    """Delete the token named `name` (False: there is none); it stops working in this process at
    once and in the others within API_TOKEN_CACHE_SECONDS. Its stored predictions stay."""
    token_id = db.session.scalar(select(ApiToken.id).where(ApiToken.name == name))
    if token_id is None:
        return False
    db.session.execute(delete(ApiToken).where(ApiToken.id == token_id))
    db.session.commit()
    current_app.extensions.get(_CACHE, {}).clear()
    return True
