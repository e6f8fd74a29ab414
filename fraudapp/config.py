"""Configuration: defaults here, then instance/config.py, then FRAUDAPP_* environment variables."""

from __future__ import annotations

import os

ROLES = ("all", "web", "trainer")


class Defaults:
    """Settings every deployment starts from."""

    SECRET_KEY = None
    DATABASE_URL = None  # default: SQLite file in the instance folder
    MODEL_DIR = None  # default: instance/models
    MODEL_CHECK_INTERVAL = 0.5  # seconds between checks of the CURRENT pointer
    MODEL_RETRY_SECONDS: float = 5.0  # while the released model cannot load, retry it this often
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    MAX_BATCH = 1000
    EXPLAIN_TOP = 4
    WTF_CSRF_TIME_LIMIT = None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False  # set FRAUDAPP_SESSION_COOKIE_SECURE=true behind HTTPS
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    PERMANENT_SESSION_LIFETIME = 8 * 3600
    CARD_PRECISION_K = 100
    MONITOR_CARD_SCORE_FLOOR = 0.01  # customers scoring below this are left out of card precision
    ALERT_WINDOW_DAYS = 14  # the rules below look at the last N days
    ALERT_F1_BELOW = 0.5  # ... F1 below this, when at least ALERT_MIN_LABELS labels exist
    ALERT_MIN_LABELS = 30
    ALERT_PSI_ABOVE = 0.25  # ... any feature's or the score's PSI above this
    ALERT_COVERAGE_BELOW = 0.05  # ... share of stored predictions with a label below this
    DRIFT_MIN_SAMPLES = 100  # fewer recent predictions than this: no PSI
    DRIFT_SAMPLE = 2000  # PSI from at most this many of the most recent predictions
    ALERT_WEBHOOK_URLS: list[str] = []  # signed POSTs of new alerts
    WEBHOOK_SECRET = None  # signs outgoing and verifies incoming webhooks
    RETRAIN_TRAIN_DAYS = 28  # a retraining run trains on this many labelled days ...
    RETRAIN_DELAY_DAYS = 7  # ... then skips the label delay ...
    RETRAIN_VALIDATION_DAYS = 7  # ... and compares candidate and champion on the latest days
    RETRAIN_EVERY_DAYS = None  # e.g. 7 for a weekly scheduled run (off by default)
    RETRAIN_ON_ALERT = False  # queue a run when `flask monitor` raises an alert
    PROMOTE_AP_MARGIN = 0.01  # promote when candidate AP >= champion AP - margin ...
    PROMOTE_MIN_LABELS = 1000  # ... and the training window had at least this many labels
    TRAINER_POLL_SECONDS = 5.0
    TRAINER_HEARTBEAT_SECONDS = 5.0
    TRAINER_STALE_SECONDS = 120.0  # a running run silent this long is marked failed
    TRAINER_NICE = 10  # CPU priority the trainer lowers itself by
    ROLE = "all"  # "web" (a prediction node), "trainer", or "all" (both, one deployment)
    NODE_NAME = None  # this process's name on /admin/nodes (default: NODE_URL, else the host)
    NODE_URL = None  # this node's base URL as the trainer reaches it, e.g. http://10.0.0.5:8000
    NODE_SYNC_SECONDS = 10.0  # each worker checks the database's serving version this often
    NODES: list[str] = []  # base URLs of prediction nodes told of model.published
    ARTIFACT_BASE_URL = "http://127.0.0.1:8000"  # the trainer's base URL as nodes reach it
    WEBHOOK_TIMEOUT_SECONDS = 5.0
    ARTIFACT_TIMEOUT_SECONDS = 20.0  # a node's artifact download (under gunicorn's 30 s timeout)
    WEBHOOK_MAX_ATTEMPTS = 8  # a delivery is retried with exponential back-off ...
    WEBHOOK_BACKOFF_SECONDS = 2.0  # ... first after this, doubling each time (2, 4, ... 128 s)
    DEMO_CUSTOMERS = 600
    DEMO_TERMINALS = 1200
    DEMO_DAYS = 90


def resolve_paths(config: dict, instance_path: str) -> None:
    """Fill the defaults that live in the instance folder and the SQLAlchemy URI."""
    url = config.get("DATABASE_URL") or "sqlite:///" + os.path.join(instance_path, "fraudapp.db")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    config["SQLALCHEMY_DATABASE_URI"] = url
    config["MODEL_DIR"] = config.get("MODEL_DIR") or os.path.join(instance_path, "models")
