"""Database tables: history, labels, predictions, users, tokens, audit events, counts, training
runs, model distribution and file jobs; the column types and the dialect-aware insert they share."""

from __future__ import annotations

import datetime as dt
import secrets

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db
from .ml.features import DAY

BigId = BigInteger().with_variant(Integer, "sqlite")
LABEL_PRIORITY = {"import": 0, "feedback": 1, "analyst": 2}
GIVEN_LABELS = "source != 'import'"  # the labels people gave (a literal: partial indexes match it)
ROLES = ("analyst", "admin")
TOKEN_SCOPES = ("own", "all")  # whose predictions an API token may give feedback on
MAX_BIG_ID = 2**63 - 1  # the largest id a BigInteger (or SQLite INTEGER) column holds


def utcnow() -> dt.datetime:
    """The current time in UTC, for column defaults (called per row, not at import)."""
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator):
    """A point in time, stored as UTC and always read back timezone-aware (SQLite keeps no zone:
    its values come back naive, and are UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


def dialect_insert(table):
    """INSERT with ON CONFLICT support for the session's database."""
    postgres = db.session.get_bind().dialect.name == "postgresql"
    return (postgresql_insert if postgres else sqlite_insert)(table)


class Transaction(db.Model):
    """A card transaction in the history the features are computed from.

    `tx_time` is Unix seconds (UTC): window queries stay integer comparisons on every database.
    `fraud` is the label known now (None while unlabelled); `labels` keeps every label given.
    """

    __tablename__ = "transactions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    tx_time: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[str] = mapped_column(String(64))
    terminal_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[float]
    fraud: Mapped[bool | None]
    label_source: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    labels: Mapped[list[Label]] = relationship(
        back_populates="transaction", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("ix_transactions_customer_time", "customer_id", "tx_time", "amount"),
        Index("ix_transactions_terminal_time", "terminal_id", "tx_time", "fraud"),
        Index("ix_transactions_time", "tx_time", "fraud", "customer_id"),
    )

    @hybrid_property
    def day(self) -> int:
        """The transaction's day number since the epoch (in Python and in SQL)."""
        return self.tx_time // DAY

    @property
    def tx_datetime(self) -> dt.datetime:
        """The transaction time as a naive UTC datetime."""
        return dt.datetime.fromtimestamp(self.tx_time, dt.UTC).replace(tzinfo=None)

    def __repr__(self) -> str:
        return f"<Transaction {self.id} customer={self.customer_id} amount={self.amount}>"


class Label(db.Model):
    """One label given to a transaction: fraud or genuine, by whom (source), when it was known."""

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("transactions.id", ondelete="CASCADE"), index=True
    )
    fraud: Mapped[bool]
    source: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    # When the label became known: features at a time t use only labels known by t. Imported labels
    # are known at the Handbook's delay after their transaction; others when given (or the `at` a
    # replay passes).
    known_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The labelled transaction's time (Unix seconds), copied: the labels given to the transactions
    # of a period (the known-fraud features' delay period) come from one index, without the rows.
    tx_time: Mapped[int] = mapped_column(BigInteger)

    transaction: Mapped[Transaction] = relationship(back_populates="labels")

    __table_args__ = (  # the labels known at a time, per transaction, without reading the rows
        Index("ix_labels_transaction_known", "transaction_id", "known_at", "source", "fraud"),
        Index(
            "ix_labels_given_by_tx_time",
            "tx_time",
            "known_at",
            "transaction_id",
            "fraud",
            "source",
            sqlite_where=text(GIVEN_LABELS),
            postgresql_where=text(GIVEN_LABELS),
        ),
    )

    def __repr__(self) -> str:
        return f"<Label tx={self.transaction_id} fraud={self.fraud} source={self.source}>"


class Prediction(db.Model):
    """A stored (consented) prediction: score, decision, model version and the features it saw."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("transactions.id", ondelete="CASCADE"), unique=True
    )
    score: Mapped[float]
    is_fraud: Mapped[bool]
    threshold: Mapped[float]
    model_version: Mapped[str] = mapped_column(String(16), index=True)
    # The shadowed challenger's score of the same features (never used for the decision).
    challenger_version: Mapped[str | None] = mapped_column(String(16))
    challenger_score: Mapped[float | None]
    features: Mapped[dict] = mapped_column(JSON)
    receipt_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    api_token_id: Mapped[int | None] = mapped_column(  # the API token that asked (None: the form)
        ForeignKey("api_tokens.id", ondelete="SET NULL"), index=True
    )

    transaction: Mapped[Transaction] = relationship()

    __table_args__ = (  # covers the monitoring aggregates without reading the feature blobs
        Index("ix_predictions_monitoring", "transaction_id", "model_version", "score"),
    )

    def __repr__(self) -> str:
        return f"<Prediction {self.id} score={self.score:.3f} model={self.model_version}>"


class ApiToken(db.Model):
    """A bearer token for the JSON API; only its sha256 is stored. Its scope says whose
    predictions it may give feedback on: its own ("own") or every one ("all")."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(8), default="own", server_default="own")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<ApiToken {self.name}>"


class User(UserMixin, db.Model):
    """A person who logs in: an analyst labels transactions, an admin also runs the system."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Part of every session's user id: a new value (logout, password change) ends old sessions.
    session_token: Mapped[str] = mapped_column(String(32), default=lambda: secrets.token_hex(16))

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.active

    def get_id(self) -> str:  # Flask-Login: what the session cookie holds
        return f"{self.id}:{self.session_token}"

    def end_sessions(self) -> None:
        """Invalidate every session opened so far (they carry the old session token)."""
        self.session_token = secrets.token_hex(16)

    def set_password(self, password: str) -> None:
        """Store a salted hash of the password; sessions opened with the old one end."""
        self.password_hash = generate_password_hash(password)
        self.end_sessions()

    def check_password(self, password: str) -> bool:
        """Whether the password matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    def has_role(self, role: str) -> bool:
        """Admins can do what analysts can."""
        return self.role == role or self.role == "admin"

    def __repr__(self) -> str:
        return f"<User {self.username} ({self.role})>"


class AuditEvent(db.Model):
    """An append-only record of who did what, when, from where."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120), index=True)
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str | None] = mapped_column(String(120))
    details: Mapped[dict | None] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(45))

    __table_args__ = (  # login throttling counts recent failures per address (and name)
        Index("ix_audit_events_action_ip_time", "action", "ip", "created_at"),
    )

    def __repr__(self) -> str:
        return f"<AuditEvent {self.action} by {self.actor}>"


class DailyCount(db.Model):
    """Anonymous prediction counts per day, model version and decision — consented or not."""

    __tablename__ = "daily_counts"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    model_version: Mapped[str] = mapped_column(String(16), primary_key=True)
    is_fraud: Mapped[bool] = mapped_column(primary_key=True)
    consented: Mapped[bool] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)

    def __repr__(self) -> str:
        return f"<DailyCount {self.day} {self.model_version} fraud={self.is_fraud}: {self.count}>"


class ModelSetting(db.Model):
    """An admin's decision threshold for a model version, overriding the one chosen in training."""

    __tablename__ = "model_settings"

    model_version: Mapped[str] = mapped_column(String(16), primary_key=True)
    threshold: Mapped[float]
    updated_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<ModelSetting {self.model_version} threshold={self.threshold}>"


class MonitoringSnapshot(db.Model):
    """One run of `flask monitor`: the figures it computed and the alerts it raised."""

    __tablename__ = "monitoring_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    model_version: Mapped[str | None] = mapped_column(String(16))
    figures: Mapped[dict] = mapped_column(JSON)
    alerts: Mapped[list] = mapped_column(JSON)
    deliveries: Mapped[list | None] = mapped_column(JSON)

    def __repr__(self) -> str:
        return f"<MonitoringSnapshot {self.id} alerts={len(self.alerts)}>"


class TrainingRun(db.Model):
    """A request to train a model, and what became of it.

    status: queued → running → succeeded | failed | cancelled. promotion: "promoted", "awaiting
    approval" (the policy did not promote it; an admin may) or None. At most one run is queued or
    running: a unique index on a constant over those rows, so the database itself refuses a second.
    """

    __tablename__ = "training_runs"
    __table_args__ = (
        Index(
            "uq_training_runs_one_active",
            text("(1)"),
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    reason: Mapped[str] = mapped_column(String(16))  # admin, cli, schedule, alert
    requested_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    worker: Mapped[str | None] = mapped_column(String(120))
    progress: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    params: Mapped[dict | None] = mapped_column(JSON)
    windows: Mapped[dict | None] = mapped_column(JSON)
    train_rows: Mapped[int | None]
    labels: Mapped[dict | None] = mapped_column(JSON)
    candidate_metrics: Mapped[dict | None] = mapped_column(JSON)
    champion_version: Mapped[str | None] = mapped_column(String(16))
    champion_metrics: Mapped[dict | None] = mapped_column(JSON)
    version: Mapped[str | None] = mapped_column(String(16))
    promotion: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(String(2000))

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.status in ("queued", "running")

    def __repr__(self) -> str:
        return f"<TrainingRun {self.id} {self.status}>"


class MonitoringBin(db.Model):
    """Stored predictions counted per transaction day, model version, score bin (1/1000) and label
    known now (1 fraud, 0 genuine, -1 none) — the dashboard reads these, not the predictions."""

    __tablename__ = "monitoring_bins"

    day: Mapped[int] = mapped_column(Integer, primary_key=True)  # days since the epoch
    model_version: Mapped[str] = mapped_column(String(16), primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class MonitoringDay(db.Model):
    """Per transaction day and model version: frauds among the day's top-k customers."""

    __tablename__ = "monitoring_days"

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version: Mapped[str] = mapped_column(String(16), primary_key=True)
    card_hits: Mapped[int]
    k: Mapped[int]


class DirtyDay(db.Model):
    """A transaction day whose monitoring aggregates must be recomputed before they are read."""

    __tablename__ = "monitoring_dirty_days"

    day: Mapped[int] = mapped_column(Integer, primary_key=True)


class LearningRow(db.Model):
    """The learning panel, written by `flask monitor`: a promoted version's first served week
    against the version it replaced, both scored on the very same labelled transactions."""

    __tablename__ = "learning_rows"

    version: Mapped[str] = mapped_column(String(16), primary_key=True)
    replaced: Mapped[str | None] = mapped_column(String(16))
    promoted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    figures: Mapped[dict] = mapped_column(JSON)  # labels, frauds, ap/f1 of both
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<LearningRow {self.version} vs {self.replaced}>"


class ModelVersion(db.Model):
    """A registry version the trainer published, and where prediction nodes download it from."""

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(16), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    artifact_url: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    summary: Mapped[dict] = mapped_column(JSON)  # threshold, windows, metrics

    def __repr__(self) -> str:
        return f"<ModelVersion {self.version}>"


class ModelRelease(db.Model):
    """A change of the serving version (promotion or rollback) or of the shadowed challenger
    (shadow, unshadow); the latest promotion or rollback is what every prediction node must serve,
    the latest shadow row (unless an unshadow follows) the version every node also scores with.
    `announced` once the trainer has queued model.published for the nodes (a change clicked on a
    node is announced by the trainer within a second)."""

    __tablename__ = "model_releases"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))  # promote, rollback, shadow, unshadow
    actor: Mapped[str] = mapped_column(String(120))
    announced: Mapped[bool] = mapped_column(default=False)  # model.published queued to the nodes
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<ModelRelease {self.id} {self.action} {self.version}>"


class WebhookEndpoint(db.Model):
    """A prediction node added by an admin: model.published goes to `url`, signed with `secret`."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(500), unique=True)
    secret: Mapped[str] = mapped_column(String(200))
    added_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<WebhookEndpoint {self.url}>"


class WebhookDelivery(db.Model):
    """One webhook to deliver to one URL: pending (with the time of its next attempt), delivered or
    failed (gave up after the last retry)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_ms: Mapped[float | None]
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    def __repr__(self) -> str:
        return f"<WebhookDelivery {self.id} {self.event} {self.url} {self.status}>"


class WebhookNonce(db.Model):
    """A signature a node has accepted: the same delivery presented again is a replay."""

    __tablename__ = "webhook_nonces"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


class NodeStatus(db.Model):
    """A prediction node's (or the trainer's) last report: the version it serves and when."""

    __tablename__ = "node_status"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(500))
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_error_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    def __repr__(self) -> str:
        return f"<NodeStatus {self.name} {self.version}>"


class FileJob(db.Model):
    """A file an analyst uploaded to be scored, and what became of it.

    status: queued → running → done | failed. The URL names a job by `key` (random, not
    guessable); the owner and admins may see it. The upload lives on the node that received it
    (`node`), so only that node's workers claim it; it is deleted when the job ends, the scored
    file at `expires_at` or when its owner deletes it.
    """

    __tablename__ = "file_jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: secrets.token_hex(16))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    store: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    node: Mapped[str] = mapped_column(String(120))
    worker: Mapped[str | None] = mapped_column(String(120))
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_total: Mapped[int | None] = mapped_column(BigInteger)
    summary: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(2000))
    upload_path: Mapped[str | None] = mapped_column(String(1000))
    result_path: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    owner: Mapped[User] = relationship()

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.status in ("queued", "running")

    def __repr__(self) -> str:
        return f"<FileJob {self.id} {self.file_name} {self.status}>"
