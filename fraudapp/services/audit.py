"""The audit log: who did what, when, from where. Append-only; callers commit with their change."""

from __future__ import annotations

from flask import has_request_context, request
from flask_login import current_user

from ..extensions import db
from ..models import AuditEvent


def current_actor() -> str:
    """The logged-in user's name, else "anonymous"."""
    if has_request_context() and current_user.is_authenticated:
        return current_user.username
    return "anonymous"


def record(
    action: str, target: str | None = None, details: dict | None = None, actor: str | None = None
) -> AuditEvent:
    """Add an audit event to the session (committed with the caller's unit of work)."""
    event = AuditEvent(
        actor=actor or current_actor(),
        action=action,
        target=target,
        details=details,
        ip=request.remote_addr if has_request_context() else None,
    )
    db.session.add(event)
    return event
