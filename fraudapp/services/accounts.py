"""User accounts: creation, password login with throttling of repeated failures."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import func, or_, select

from ..extensions import db
from ..models import ROLES, AuditEvent, User, utcnow
from . import audit

MAX_FAILURES = 5
FAILURE_WINDOW = dt.timedelta(minutes=15)


class AccountError(Exception):
    """A user that cannot be created as asked."""


class LoginThrottled(Exception):
    """Too many failed logins for this name or address recently."""


def create_user(username: str, role: str, password: str) -> User:
    """A new active user with a hashed password."""
    username = username.strip()
    if not username or len(username) > 80:
        raise AccountError("the user name must be 1-80 characters")
    if role not in ROLES:
        raise AccountError(f"the role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise AccountError("the password must have at least 8 characters")
    if db.session.scalar(select(User.id).where(User.username == username)):
        raise AccountError(f"a user named {username!r} exists already")
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    audit.record("user.created", target=username, details={"role": role}, actor="cli")
    db.session.commit()
    return user


def ensure_demo_admin() -> str | None:
    """Create the user "admin" with a random password when no admin exists; the password or None."""
    if db.session.scalar(select(User.id).where(User.role == "admin")):
        return None
    password = secrets.token_urlsafe(12)
    create_user("admin", "admin", password)
    return password


def authenticate(username: str, password: str, ip: str | None) -> User | None:
    """The user when name and password match; failures are recorded and throttled."""
    if _recent_failures(username, ip) >= MAX_FAILURES:
        raise LoginThrottled(f"too many failed logins; try again in {_minutes()} minutes")
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not user.check_password(password):
        audit.record("login.failed", target=username[:120], actor=username[:120] or "anonymous")
        db.session.commit()
        return None
    audit.record("login", target=username, actor=username)
    db.session.commit()
    return user


def _recent_failures(username: str, ip: str | None) -> int:
    since = utcnow() - FAILURE_WINDOW
    who = (
        or_(AuditEvent.target == username, AuditEvent.ip == ip)
        if ip
        else (AuditEvent.target == username)
    )
    return db.session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "login.failed", AuditEvent.created_at > since, who)
    )


def _minutes() -> int:
    return int(FAILURE_WINDOW.total_seconds() // 60)
