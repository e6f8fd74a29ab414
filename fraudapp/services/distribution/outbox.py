"""The webhook outbox: model.published to the prediction nodes, and alerts.

Every webhook (`model.published` to each node, `monitoring.alert` to each alert URL) is
one delivery row, tried at once and retried with exponential back-off (WEBHOOK_BACKOFF_SECONDS,
doubling) until WEBHOOK_MAX_ATTEMPTS; each attempt's status, error and response time are kept.
Any process may deliver (the trainer retries): an attempt is claimed by a conditional update, so
two deliverers never post the same attempt.
"""

from __future__ import annotations

import datetime as dt
import uuid

from flask import current_app
from sqlalchemy import select, update

from ... import signing
from ...extensions import db
from ...i18n import Message
from ...models import ModelVersion, WebhookDelivery, WebhookEndpoint, utcnow
from .. import audit

MODEL_HOOK = "/hooks/model-published"
LEASE = dt.timedelta(seconds=60)  # an attempt whose deliverer died is tried again after this


class EndpointError(Exception):
    """An endpoint that cannot be added or removed as asked."""


# -- the nodes to tell ---------------------------------------------------------------------------


def endpoints() -> list[dict]:
    """The prediction nodes told of model.published: FRAUDAPP_NODES (signed with the webhook
    secret) and the ones added on the admin page (with their own secret)."""
    secret = current_app.config["WEBHOOK_SECRET"]
    found = {
        url.rstrip("/"): {"id": None, "url": url.rstrip("/"), "secret": secret, "source": "config"}
        for url in current_app.config["NODES"]
    }
    for row in db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.url)):
        found[row.url] = {"id": row.id, "url": row.url, "secret": row.secret, "source": "admin"}
    return sorted(found.values(), key=lambda endpoint: endpoint["url"])


def add_endpoint(url: str, secret: str, by: str) -> WebhookEndpoint:
    """Add a node (its base URL) with the secret it verifies with; audited; commits."""
    url = url.strip().rstrip("/")
    if db.session.scalar(select(WebhookEndpoint.id).where(WebhookEndpoint.url == url)):
        raise EndpointError(Message("%(url)s is already a node", url=url))
    row = WebhookEndpoint(url=url, secret=secret, added_by=by)
    db.session.add(row)
    audit.record("node.added", target=url, actor=by)
    db.session.commit()
    return row


def remove_endpoint(endpoint_id: int, by: str) -> str:
    """Stop telling a node of new versions (its pending deliveries fail); audited; commits; its
    URL."""
    row = db.session.get(WebhookEndpoint, endpoint_id)
    if row is None:
        raise EndpointError(Message("no such node (it may have been removed already)"))
    db.session.delete(row)
    db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.url == row.url + MODEL_HOOK, WebhookDelivery.status == "pending")
        .values(status="failed", next_attempt_at=None, last_error="the node was removed")
        .execution_options(synchronize_session=False)
    )
    audit.record("node.removed", target=row.url, actor=by)
    db.session.commit()
    return row.url


# -- outgoing ------------------------------------------------------------------------------------


def announce(version: ModelVersion) -> list[WebhookDelivery]:
    """Queue model.published for every node (in the caller's transaction). Each delivery has its
    own id, so two announcements of one version never share a signature (replays are refused)."""
    payload = {
        "event": "model.published",
        "version": version.version,
        "sha256": version.sha256,
        "artifact_url": version.artifact_url,
        "published_at": utcnow().isoformat(timespec="seconds"),
    }
    return [queue(endpoint["url"] + MODEL_HOOK, payload) for endpoint in endpoints()]


def queue(url: str, payload: dict) -> WebhookDelivery:
    """Queue one signed POST of `payload` (its "event" names it) to `url`, due now (in the
    caller's transaction)."""
    delivery = WebhookDelivery(
        url=url,
        event=payload["event"],
        payload={**payload, "delivery": uuid.uuid4().hex},
        status="pending",
        next_attempt_at=utcnow(),
    )
    db.session.add(delivery)
    db.session.flush()
    return delivery


def deliver_due(limit: int = 50) -> int:
    """Attempt the deliveries whose time has come; how many were attempted."""
    ids = db.session.scalars(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= utcnow())
        .order_by(WebhookDelivery.id)
        .limit(limit)
    ).all()
    return deliver(ids)


def deliver(ids: list[int]) -> int:
    """Attempt these deliveries once each (those still pending and not claimed by another
    deliverer); how many were attempted."""
    config = current_app.config
    secrets = {endpoint["url"] + MODEL_HOOK: endpoint["secret"] for endpoint in endpoints()}
    attempted = 0
    for delivery_id in ids:
        delivery = _claim(delivery_id)
        if delivery is None:
            continue
        attempted += 1
        secret = secrets.get(delivery.url, config["WEBHOOK_SECRET"])
        if secret:
            outcome = signing.post(
                delivery.url, secret, delivery.payload, config["WEBHOOK_TIMEOUT_SECONDS"]
            )
        else:
            outcome = {"status": None, "ms": 0.0, "error": "no secret to sign with"}
        _record(delivery, outcome)
    return attempted


def _claim(delivery_id: int) -> WebhookDelivery | None:
    now = utcnow()
    claimed = db.session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
        )
        .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return db.session.get(WebhookDelivery, delivery_id) if claimed.rowcount else None


def _record(delivery: WebhookDelivery, outcome: dict) -> None:
    config = current_app.config
    delivery.last_status, delivery.last_ms = outcome["status"], outcome["ms"]
    delivery.last_error = (outcome.get("error") or None) and outcome["error"][:500]
    if outcome["status"] is not None and 200 <= outcome["status"] < 300:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
            "delivered",
            utcnow(),
            None,
        )
    elif delivery.attempts >= config["WEBHOOK_MAX_ATTEMPTS"]:
        delivery.status, delivery.next_attempt_at = "failed", None
        current_app.logger.warning(
            "webhook to %s failed for good: %s", delivery.url, delivery.last_error
        )
    else:
        backoff = config["WEBHOOK_BACKOFF_SECONDS"] * 2 ** (delivery.attempts - 1)
        delivery.next_attempt_at = utcnow() + dt.timedelta(seconds=backoff)
    db.session.commit()


def recent(limit: int = 50) -> list[WebhookDelivery]:
    """The latest deliveries, newest first."""
    return list(
        db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit))
    )
