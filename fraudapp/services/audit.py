"""The audit log: who did what, when, from where. Append-only; callers commit with their change."""

from __future__ import annotations

import unicodedata

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import func, select

from ..extensions import db
from ..models import AuditEvent


def current_actor() -> str:
    """The logged-in user's name, else "anonymous"."""
    if has_request_context() and current_user.is_authenticated:
        return current_user.username
    return "anonymous"


def record(
    action: str,
    target: str | None = None,
    details: dict | None = None,
    actor: str | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Add an audit event to the session (committed with the caller's unit of work); `ip`
    defaults to the client's address."""
    event = AuditEvent(
        actor=clean(actor or current_actor(), 120) or "anonymous",
        action=action,
        target=clean(target, 120),
        details=details,
        ip=clean(ip, 45) if ip is not None else client_ip(),
    )
    db.session.add(event)
    return event


def client_ip() -> str | None:
    """The client's address as the audit log stores it (behind trusted proxies: the real one)."""
    return clean(request.remote_addr, 45) if has_request_context() else None


def clean(value: str | None, limit: int) -> str | None:
    """`value` without control characters (NUL, CR, LF, ...) and cut to `limit` characters."""
    if value is None:
        return None
    return "".join(c for c in value if not is_control(c))[:limit]


def is_control(char: str) -> bool:
    """Control, invisible formatting or lone surrogate: never part of a name a log should keep."""
    return unicodedata.category(char) in ("Cc", "Cf", "Cs")


def search(
    actor: str | None = None,
    action: str | None = None,
    since=None,
    until=None,
    page: int = 1,
    per_page: int = 50,
):
    """Audit events, newest first, filtered; (events, total)."""
    conditions = []
    if actor:
        conditions.append(AuditEvent.actor == actor)
    if action:
        conditions.append(AuditEvent.action == action)
    if since:
        conditions.append(AuditEvent.created_at >= since)
    if until:
        conditions.append(AuditEvent.created_at < until)
    query = select(AuditEvent).where(*conditions)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    events = db.session.scalars(
        query.order_by(AuditEvent.id.desc()).offset((max(page, 1) - 1) * per_page).limit(per_page)
    ).all()
    return list(events), total


def actions() -> list[str]:
    """The actions that occur in the log."""
    return sorted(db.session.scalars(select(AuditEvent.action).distinct()).all())
