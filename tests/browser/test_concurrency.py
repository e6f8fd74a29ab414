"""Concurrent feedback on the same and different predictions, through several gunicorn workers,
loses nothing and never errors (issue 3, item 7) — against the shared live server, over loopback."""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import bindparam, text

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PREDICTIONS = 20
HOT = 2  # predictions that get half of all requests, so that answers on them really collide
REQUESTS = 400
THREADS = 16
REQUEST_TIMEOUT = 30  # seconds for one request
BUDGET = 180  # seconds for all the feedback requests together
FIRST_CUSTOMER = 910_000  # customers no other test uses


def _post(live_server, path: str, body: dict) -> tuple[int, dict | str]:
    """POST JSON with the fixture's token; the status and the decoded answer (never raises on
    an HTTP error status)."""
    request = urllib.request.Request(  # noqa: S310  (loopback, the live server)
        live_server["url"] + path,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {live_server['token']}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def _plan(predictions: list[dict], rng: random.Random) -> list[tuple[int, dict, str]]:
    """REQUESTS feedback requests: half on the HOT predictions, half spread over all of them;
    half {"correct": ...}, half {"label": ...}. Each with the label it asks for."""
    plan = []
    for number in range(REQUESTS):
        target = predictions[number % HOT] if number % 2 else rng.choice(predictions)
        if rng.random() < 0.5:
            correct = rng.random() < 0.5
            body = {"correct": correct}
            fraud = target["is_fraud"] == correct
        else:
            fraud = rng.random() < 0.5
            body = {"label": "fraud" if fraud else "genuine"}
        plan.append((target["id"], body, "fraud" if fraud else "genuine"))
    rng.shuffle(plan)
    return plan


def _in(sql: str):
    """A text query whose :ids parameter takes a list."""
    return text(sql).bindparams(bindparam("ids", expanding=True))


def test_concurrent_feedback_loses_nothing_and_never_errors(live_server, live_db):
    rng = random.Random(20240607)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    transactions = [
        {
            "tx_datetime": (now - dt.timedelta(minutes=i)).isoformat(),
            "customer_id": FIRST_CUSTOMER + i,
            "terminal_id": rng.randrange(600),
            "amount": round(rng.uniform(5, 500), 2),
            "consent": True,
        }
        for i in range(PREDICTIONS)
    ]
    status, answer = _post(live_server, "/api/v1/predictions", {"transactions": transactions})
    assert status == 201, answer
    predictions = answer["predictions"]
    assert len(predictions) == PREDICTIONS
    assert all(p["stored"] and p["id"] for p in predictions)
    plan = _plan(predictions, rng)

    def send(item):
        prediction_id, body, _ = item
        started = time.monotonic()
        try:
            status, answer = _post(
                live_server, f"/api/v1/predictions/{prediction_id}/feedback", body
            )
        except OSError as exc:  # a timeout or a refused or reset connection
            status, answer = None, repr(exc)
        return status, answer, time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(send, plan, timeout=BUDGET))
    elapsed = time.monotonic() - started

    failures = [
        (item, status, answer)
        for item, (status, answer, _) in zip(plan, results, strict=True)
        if status != 201
    ]
    assert not failures, f"{len(failures)} of {REQUESTS} requests failed, e.g. {failures[:5]}"
    for (prediction_id, _, label), (_, answer, _) in zip(plan, results, strict=True):
        assert answer == {"prediction_id": prediction_id, "label": label, "source": "feedback"}
    slowest = max(seconds for _, _, seconds in results)
    print(f"{REQUESTS} feedback requests in {elapsed:.1f} s, slowest {slowest:.2f} s")

    # In the database: one feedback row per request, and each transaction's label known now is the
    # label of its latest feedback row.
    ids = [p["id"] for p in predictions]
    with live_db.connect() as connection:
        transaction_of = dict(
            connection.execute(
                _in("SELECT id, transaction_id FROM predictions WHERE id IN :ids"), {"ids": ids}
            ).all()
        )
        tids = list(transaction_of.values())
        rows = connection.execute(
            _in(
                "SELECT id, transaction_id, fraud, source, actor FROM labels "
                "WHERE transaction_id IN :ids ORDER BY id"
            ),
            {"ids": tids},
        ).all()
        current = {
            tid: (bool(fraud), source)
            for tid, fraud, source in connection.execute(
                _in("SELECT id, fraud, label_source FROM transactions WHERE id IN :ids"),
                {"ids": tids},
            ).all()
        }

    assert len(transaction_of) == PREDICTIONS
    assert len(rows) == REQUESTS, f"{len(rows)} label rows for {REQUESTS} requests"
    assert {source for _, _, _, source, _ in rows} == {"feedback"}
    assert {actor for *_, actor in rows} == {f"api:{live_server['token_name']}"}
    sent = Counter((transaction_of[pid], label == "fraud") for pid, _, label in plan)
    stored = Counter((tid, bool(fraud)) for _, tid, fraud, _, _ in rows)
    assert stored == sent
    latest = {tid: bool(fraud) for _, tid, fraud, _, _ in rows}  # ordered by id: the last wins
    assert set(latest) == set(current) == set(transaction_of.values())
    wrong = {
        tid: {"label now": current[tid], "latest feedback": latest[tid]}
        for tid in current
        if current[tid] != (latest[tid], "feedback")
    }
    assert not wrong, f"label known now is not the latest feedback: {wrong}"
