"""User accounts: creation, password changes, password login with throttling of repeated failures.

Failed logins are counted per client address and per (name, address) pair, never per name alone:
an attacker elsewhere cannot lock a user out. Past a few free failures each further one doubles the
wait (capped). Unknown names cost the same password hash check as known ones.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import secrets

from flask import current_app
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..i18n import Message
from ..models import ROLES, AuditEvent, User, utcnow
from . import audit


class AccountError(Exception):
    """A user that cannot be created as asked."""


class LoginThrottled(Exception):
    """Too many failed logins from this address (for this name) recently; retry later."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed logins; try again in {retry_after} seconds")
        self.retry_after = retry_after


def create_user(username: str, role: str, password: str) -> User:
    """A new active user with a hashed password."""
    username = username.strip()
    if not username or len(username) > 80:
        raise AccountError(Message("the user name must be 1-80 characters"))
    if has_control_characters(username):
        raise AccountError(Message("the user name must not contain control characters"))
    if role not in ROLES:
        raise AccountError(Message("the role must be one of %(roles)s", roles=", ".join(ROLES)))
    _check_password(password)
    if db.session.scalar(select(User.id).where(User.username == username)):
        raise AccountError(Message("a user named %(name)s exists already", name=repr(username)))
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


def set_password(username: str, password: str) -> User:
    """Give a user a new password; every session opened before ends."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AccountError(Message("no user named %(name)s", name=repr(username)))
    _check_password(password)
    user.set_password(password)
    audit.record("user.password_changed", target=username, actor="cli")
    db.session.commit()
    return user


def logout(user: User) -> None:
    """End every session of `user` (a copied session cookie stops working too)."""
    user.end_sessions()
    audit.record("logout", target=user.username, actor=user.username)
    db.session.commit()


def load_session_user(session_id: str) -> User | None:
    """The active user whose session id ("<user id>:<session token>") is still current."""
    user_id, _, token = session_id.partition(":")
    user = db.session.get(User, int(user_id)) if user_id.isdigit() and len(user_id) < 12 else None
    if (
        user is None
        or not user.active
        or not secrets.compare_digest(user.session_token.encode(), token.encode())
    ):
        return None
    return user


def has_control_characters(text: str) -> bool:
    """Whether `text` holds a control character (NUL, CR, LF, ...) or an invisible one."""
    return any(audit.is_control(c) for c in text)


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise AccountError(Message("the password must have at least 8 characters"))
    if has_control_characters(password):
        raise AccountError(Message("the password must not contain control characters"))


def authenticate(username: str, password: str, ip: str | None) -> User | None:
    """The user when name and password match; failures are recorded and throttled."""
    name, ip = audit.clean(username, 120) or "", audit.clean(ip, 45)
    wait = _throttle_wait(name, ip)
    if wait > 0:
        raise LoginThrottled(math.ceil(wait))
    user = None
    if name == username:  # a name with control characters matches no user (and no SQL sees it)
        user = db.session.scalar(select(User).where(User.username == username))
    # Unknown names check a dummy hash: the answer takes as long as for a known name.
    matches = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    if user is None or not user.active or not matches:
        audit.record("login.failed", target=name, actor=name or "anonymous", ip=ip)
        db.session.commit()
        return None
    audit.record("login", target=name, actor=name, ip=ip)
    db.session.commit()
    return user


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16))


def _throttle_wait(name: str, ip: str | None) -> float:
    """Seconds this address must wait before trying `name` again (0: go ahead).

    The pair's count restarts at its last successful login; the address's does not (an attacker's
    own account must not wipe the address's record).
    """
    config = current_app.config
    now = utcnow()
    since = now - dt.timedelta(seconds=config["LOGIN_FAILURE_WINDOW_SECONDS"])
    same_ip = AuditEvent.ip == ip if ip is not None else AuditEvent.ip.is_(None)
    last_success = _last("login", since, same_ip, AuditEvent.target == name)[1]
    pair = _last("login.failed", last_success or since, same_ip, AuditEvent.target == name)
    address = _last("login.failed", since, same_ip)
    return max(
        _backoff(*pair, config["LOGIN_FREE_FAILURES"], now),
        _backoff(*address, config["LOGIN_ADDRESS_FREE_FAILURES"], now),
    )


def _last(action: str, since: dt.datetime, *conditions) -> tuple[int, dt.datetime | None]:
    """How many `action` events match since `since`, and when the latest happened."""
    count, latest = db.session.execute(
        select(func.count(), func.max(AuditEvent.created_at)).where(
            AuditEvent.action == action, AuditEvent.created_at > since, *conditions
        )
    ).one()
    if latest is not None and latest.tzinfo is None:  # SQLite: naive UTC
        latest = latest.replace(tzinfo=dt.UTC)
    return count, latest


def _backoff(failures: int, latest: dt.datetime | None, free: int, now: dt.datetime) -> float:
    """Seconds left to wait after `failures`, the latest at `latest`, when `free` cost nothing:
    the wait doubles with each failure beyond those, up to the cap."""
    if latest is None or failures < free:
        return 0.0
    config = current_app.config
    delay = min(
        config["LOGIN_BACKOFF_MAX_SECONDS"],
        config["LOGIN_BACKOFF_SECONDS"] * 2 ** min(failures - free, 60),
    )
    return max(0.0, (latest + dt.timedelta(seconds=delay) - now).total_seconds())
