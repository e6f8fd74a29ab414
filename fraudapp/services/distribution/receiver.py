"""Receiving model.published on a prediction node, and authenticating artifact downloads on the
trainer: the signature (constant-time, 5-minute window, `fraudapp.signing`) and a replay check — a
(timestamp, signature) pair already accepted is refused. Artifact downloads are signed over their
path and a random nonce and go through the same check, so each signed request works once."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from flask import current_app
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from ... import jsonbody, signing
from ...extensions import db
from ...ml.registry import VERSION_RE, RegistryError
from ...models import WebhookNonce, utcnow
from . import outbox
from .agent import heartbeat
from .releases import FetchError, ReleaseError, install, serve

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")  # an artifact request's one-use nonce


def receive(header: str | None, body: bytes, sender: str | None = None) -> tuple[int, dict]:
    """Handle a model.published delivery; (HTTP status, JSON answer).

    401: a bad, missing or stale signature. 400: a replayed delivery, a malformed body, or an
    artifact that fails verification — nothing changes. 503: the artifact could not be
    downloaded (the sender retries). 200: the node serves the current version.
    """
    logger = current_app.logger
    if not authentic(header, body):
        logger.warning("model.published from %s refused: bad or stale signature", sender)
        return 401, {"error": "bad or stale signature"}
    if not first_use(header):
        logger.warning("model.published from %s refused: replayed delivery", sender)
        return 400, {"error": "replayed delivery"}
    payload, errors = _parse(body)
    if errors:
        logger.warning("model.published from %s refused: %s", sender, errors)
        return 400, {"errors": errors}
    version = payload["version"]
    try:
        installed = install(version, payload["artifact_url"], payload["sha256"])
        serving = serve(version)
    except FetchError as exc:
        logger.error("model.published %s: %s", version, exc)
        return 503, {"error": str(exc)}
    except (ReleaseError, RegistryError) as exc:
        logger.warning("model.published %s refused: %s", version, exc)
        return 400, {"errors": {"artifact": [str(exc)]}}
    logger.info("model.published %s: serving %s", version, serving)
    heartbeat()
    status = "installed" if installed else "already installed"
    return 200, {"status": status, "version": version, "serving": serving}


def _parse(body: bytes) -> tuple[dict, dict]:
    try:
        payload = jsonbody.loads(body, current_app.config["JSON_MAX_DEPTH"])
    except jsonbody.NotJSON as exc:
        return {}, {"body": [str(exc)]}
    if not isinstance(payload, dict):
        return {}, {"body": ["expected a JSON object"]}
    errors = {}
    if payload.get("event") != "model.published":
        errors["event"] = ["expected model.published"]
    if not isinstance(payload.get("version"), str) or not VERSION_RE.match(payload["version"]):
        errors["version"] = ["expected a version name such as v3"]
    if not isinstance(payload.get("sha256"), str) or not SHA256_RE.match(payload["sha256"]):
        errors["sha256"] = ["expected 64 hexadecimal digits"]
    url = payload.get("artifact_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        errors["artifact_url"] = ["expected an http(s) URL"]
    return payload, errors


def authentic(header: str | None, body: bytes) -> bool:
    """Whether a request is signed with this node's secret within the time window."""
    secret = current_app.config["WEBHOOK_SECRET"]
    return bool(secret) and signing.verify(secret, header, body)


def first_use(header: str) -> bool:
    """Record an accepted signature's (timestamp, signature) pair; False when it was seen before
    (a replay) or the header does not parse. Commits."""
    parsed = signing.parse(header)
    if parsed is None:
        return False
    timestamp, signature = parsed
    now = utcnow()
    window = dt.timedelta(seconds=2 * signing.TOLERANCE_SECONDS)
    db.session.execute(delete(WebhookNonce).where(WebhookNonce.received_at < now - window))
    digest = hashlib.sha256(f"{timestamp}.{signature}".encode()).hexdigest()
    db.session.add(WebhookNonce(digest=digest))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


def artifact_request_authentic(header: str | None, path: str, nonce: str | None = None) -> bool:
    """Whether an artifact download is signed (over its path and nonce) with a secret a node
    holds; the signature is recorded, so the same request is refused the second time. Commits."""
    if not isinstance(nonce, str) or not NONCE_RE.fullmatch(nonce):
        return False
    secrets = {endpoint["secret"] for endpoint in outbox.endpoints()}
    secrets.add(current_app.config["WEBHOOK_SECRET"])
    message = signing.artifact_message(path, nonce)
    if not any(secret and signing.verify(secret, header, message) for secret in secrets):
        return False
    return first_use(header)
