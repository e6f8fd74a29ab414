"""First-run setup: a secret key, demo history ending today, a first model — only where missing."""

from __future__ import annotations

import datetime as dt
import secrets
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from flask import current_app
from sqlalchemy import func, insert, select

from ..extensions import db
from ..ml.data import day_date
from ..ml.features import TERMINAL_DELAY_DAYS
from ..ml.simulate import simulate
from ..models import DailyCount, Prediction, Transaction
from .serving import registry
from .training.train import latest_windows, train_and_publish
from .transactions.changes import mark_days
from .transactions.history import import_handbook_frame, load_history


def ensure_secret_key(instance_path: str) -> bool:
    """Write a generated SECRET_KEY into instance/config.py unless one is there; True if written."""
    path = Path(instance_path) / "config.py"
    existing = path.read_text() if path.exists() else ""
    if "SECRET_KEY" in existing:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(existing + f"SECRET_KEY = {secrets.token_hex(32)!r}\n")
    return True


def ensure_history() -> int:
    """Simulate and import demo history ending yesterday when the history is empty; rows added.

    As in real life, the last week's labels are not known yet.
    """
    if db.session.scalar(select(func.count()).select_from(Transaction)):
        return 0
    config = current_app.config
    start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=config["DEMO_DAYS"])
    frame = simulate(
        config["DEMO_CUSTOMERS"],
        config["DEMO_TERMINALS"],
        start.isoformat(),
        config["DEMO_DAYS"],
        random_state=7,
    )
    frame["TRANSACTION_ID"] = "demo-" + frame["TRANSACTION_ID"].astype(str)
    unknown_yet = frame["TX_DATETIME"] >= frame["TX_DATETIME"].max() - pd.Timedelta(
        days=TERMINAL_DELAY_DAYS
    )
    frame["TX_FRAUD"] = frame["TX_FRAUD"].astype(str).where(~unknown_yet, "")
    return import_handbook_frame(frame, source_name="simulate").inserted


def ensure_model() -> str | None:
    """Train and serve a first model when none serves; the new version's name, else None.
    Prediction nodes (ROLE web) get theirs from the trainer instead."""
    if current_app.config["ROLE"] == "web" or registry().current() is not None:
        return None
    version, _ = train_and_publish(latest_windows(), promote=True)
    return version


def ensure_predictions(days: int = 14) -> int:
    """Score the last `days` of demo history as if they had been submitted live, when no
    prediction is stored yet, so that the review queue and the dashboard have something to show."""
    reg = registry()
    if reg.current() is None or db.session.scalar(select(func.count()).select_from(Prediction)):
        return 0
    model = reg.load(reg.current())
    history = load_history()
    ids = np.array(db.session.scalars(select(Transaction.id).order_by(Transaction.id)).all())
    recent = np.flatnonzero(history.day > history.day.max() - days)
    x = history.features()[recent]
    scores = model.score_many(x)
    db.session.execute(
        insert(Prediction),
        [
            {
                "transaction_id": int(ids[i]),
                "score": float(score),
                "is_fraud": bool(score >= model.threshold),
                "threshold": model.threshold,
                "model_version": model.version,
                "features": dict(zip(model.feature_names, row.tolist(), strict=True)),
                "created_at": dt.datetime.fromtimestamp(int(history.time[i]), dt.UTC),
            }
            for i, score, row in zip(recent, scores, model.own(x), strict=True)
        ],
    )
    _count_days(history.day[recent], scores >= model.threshold, model.version)
    mark_days(history.day[recent].tolist())
    db.session.commit()
    return len(recent)


def _count_days(days: np.ndarray, flagged: np.ndarray, version: str) -> None:
    for (day, fraud), count in Counter(zip(days.tolist(), flagged.tolist(), strict=True)).items():
        db.session.add(
            DailyCount(
                day=day_date(day),
                model_version=version,
                is_fraud=fraud,
                consented=True,
                count=count,
            )
        )
