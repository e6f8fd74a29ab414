"""API bearer tokens: created once, shown once, stored as sha256.

A token's scope says whose stored predictions it may give feedback on: "own" (the predictions it
made; the default) or "all" (every one, including the web form's).
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select

from ..extensions import db
from ..models import TOKEN_SCOPES, ApiToken


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


def verify_token(token: str) -> ApiToken | None:
    """The token's owner, or None when the token is unknown."""
    if not token:
        return None
    return db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
