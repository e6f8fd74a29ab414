"""First-run setup: a secret key, demo history ending today, and a first model — only where missing."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..ml.simulate import simulate
from ..models import Transaction
from .history import import_handbook_frame
from .training import latest_windows, registry, train_and_publish


def ensure_secret_key(instance_path: str) -> bool:
    """Write a generated SECRET_KEY into instance/config.py unless one is configured; True if written."""
    path = Path(instance_path) / "config.py"
    existing = path.read_text() if path.exists() else ""
    if "SECRET_KEY" in existing:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(existing + f"SECRET_KEY = {secrets.token_hex(32)!r}\n")
    return True


def ensure_history() -> int:
    """Simulate and import demo history ending yesterday when the history is empty; rows added."""
    if db.session.scalar(select(func.count()).select_from(Transaction)):
        return 0
    config = current_app.config
    start = dt.date.today() - dt.timedelta(days=config["DEMO_DAYS"])
    frame = simulate(
        config["DEMO_CUSTOMERS"],
        config["DEMO_TERMINALS"],
        start.isoformat(),
        config["DEMO_DAYS"],
        random_state=7,
    )
    frame["TRANSACTION_ID"] = "demo-" + frame["TRANSACTION_ID"].astype(str)
    return import_handbook_frame(frame, source_name="simulate").inserted


def ensure_model() -> str | None:
    """Train and serve a first model when none serves; the new version's name, else None."""
    if registry().current() is not None:
        return None
    version, _ = train_and_publish(latest_windows(), promote=True)
    return version
