"""Signed webhooks: `X-Fraudapp-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>`.

Used for outgoing alert and model webhooks and to verify incoming ones (constant-time compare,
5-minute window). The header is parsed strictly — exactly `t=<digits>,v1=<64 lowercase hex>` —
so one signature has one spelling and a replay check can key on the (timestamp, signature) pair.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.request

HEADER = "X-Fraudapp-Signature"
TOLERANCE_SECONDS = 300
_HEADER_RE = re.compile(r"t=([1-9][0-9]{0,11}),v1=([0-9a-f]{64})")


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for a body."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def parse(header: str | None) -> tuple[int, str] | None:
    """The (timestamp, signature) of a header spelled exactly as `sign` spells it, else None: no
    leading zeros, signs, spaces, other fields or other order."""
    match = _HEADER_RE.fullmatch(header or "")
    return (int(match[1]), match[2]) if match else None


def verify(secret: str, header: str | None, body: bytes, now: float | None = None) -> bool:
    """Whether the header signs this body with this secret, within the time window."""
    parsed = parse(header)
    if parsed is None:
        return False
    timestamp, signature = parsed
    now = time.time() if now is None else now
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = sign(secret, body, timestamp).split(",v1=", 1)[1]
    return hmac.compare_digest(expected, signature)


def artifact_message(path: str, nonce: str) -> bytes:
    """What a node signs to download an artifact: the path and a nonce of its own, once."""
    return f"{path}?nonce={nonce}".encode()


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
