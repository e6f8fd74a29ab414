"""Signed webhooks: `X-Fraudapp-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>`.

Used for outgoing alert and model webhooks and to verify incoming ones (constant-time compare,
5-minute window).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

HEADER = "X-Fraudapp-Signature"
TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for a body."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str | None, body: bytes, now: float | None = None) -> bool:
    """Whether the header signs this body with this secret, within the time window."""
    try:
        parts = dict(item.split("=", 1) for item in (header or "").split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = sign(secret, body, timestamp).split(",v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def post(url: str, secret: str, payload: dict, timeout: float = 5.0) -> dict:
    """POST a signed JSON body once; the outcome as {url, status, ms, error}."""
    if not url.startswith(("http://", "https://")):
        return {"url": url, "status": None, "error": "only http(s) URLs are allowed", "ms": 0.0}
    body = json.dumps(payload, sort_keys=True).encode()
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", HEADER: sign(secret, body)},
    )
    started = time.perf_counter()
    outcome = {"url": url, "status": None, "error": None}
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            outcome["status"] = response.status
    except urllib.error.HTTPError as exc:
        outcome["status"], outcome["error"] = exc.code, str(exc)
    except (urllib.error.URLError, OSError) as exc:
        outcome["error"] = str(exc)
    outcome["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return outcome
