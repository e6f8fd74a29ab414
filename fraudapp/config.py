"""Configuration: defaults here, then instance/config.py, then FRAUDAPP_* environment variables,
then a test's config — merged, then parsed and checked once, so a mistyped or unknown setting
stops the start with a message naming it."""

from __future__ import annotations

import datetime as dt
import difflib
import os
import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from flask import Config, Flask
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

PREFIX = "FRAUDAPP_"
Role = Literal["all", "web", "trainer"]
# FRAUDAPP_* variables read before or outside the app's config: create_app, gunicorn.conf.py,
# fraudapp.ml.training.
ENVIRONMENT_ONLY = frozenset({"INSTANCE_PATH", "BIND", "WORKERS", "TRAINING_THREADS"})


class ConfigError(RuntimeError):
    """The configuration has a setting of the wrong type, or one that does not exist."""


def _split_commas(value: Any) -> Any:
    """A list given as text that is not JSON: comma-separated items."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


TextList = Annotated[list[str], BeforeValidator(_split_commas)]
IntList = Annotated[list[int], BeforeValidator(_split_commas)]


class Defaults(BaseModel):
    """Settings every deployment starts from, with their types."""

    model_config = ConfigDict(extra="forbid")

    SECRET_KEY: str | bytes | None = None
    DATABASE_URL: str | None = None  # default: SQLite file in the instance folder
    MODEL_DIR: str | None = None  # default: instance/models
    MODEL_CHECK_INTERVAL: float = 0.5  # seconds between checks of the CURRENT pointer
    MODEL_RETRY_SECONDS: float = 5.0  # while the released model cannot load, retry it this often
    SQLALCHEMY_TRACK_MODIFICATIONS: bool = False
    # lifo: a request takes the connection returned last (its SQLite page cache is the warmest;
    # on PostgreSQL the spare ones idle), not the one idle longest
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True, "pool_use_lifo": True}
    DATABASE_CONNECT_TIMEOUT: int = 3  # whole seconds a PostgreSQL connection attempt may take
    DATABASE_RETRY_AFTER_SECONDS: int = 5  # Retry-After of the 503 while the database is down
    SQLITE_WRITE_GATE_SECONDS: float = 5.0  # a SQLite writer waits this long at the write gate
    SQLITE_CHECKPOINT_SECONDS: float = 1.0  # a web worker's thread checkpoints SQLite's WAL this
    # often, so no request waits for one; 0: the committing request does (SQLite's default)
    HEALTH_DATABASE_CHECK_SECONDS: float = 1.0  # /healthz checks the database at most this often
    BACKGROUND_RETRY_FIRST_SECONDS: float = 1.0  # a failing background thread retries after this,
    BACKGROUND_RETRY_MAX_SECONDS: float = 60.0  # ... doubling each time up to this
    MAX_BATCH: int = 1000
    COUNT_FLUSH_SECONDS: float = 1.0  # each process writes its daily prediction counts this often
    API_TOKEN_CACHE_SECONDS: float = 5.0  # a worker re-checks a known API token this often: a
    # deleted (revoked) token stops working within this time; 0 checks on every request
    CLOCK_SKEW_SECONDS: int = 300  # a transaction may be dated this far past the server's clock
    EXPLAIN_TOP: int = 4
    # Threads LightGBM may use to score a file (`flask score-file`, the Score a file page); single
    # requests always use one.
    # LightGBM threads scoring a file, beside the thread reading and featurizing the next chunk
    FILE_SCORING_THREADS: int = Field(default=1, ge=1, le=64)
    WTF_CSRF_TIME_LIMIT: int | None = None
    SESSION_COOKIE_HTTPONLY: bool = True
    SESSION_COOKIE_SAMESITE: str | None = "Lax"
    SESSION_COOKIE_SECURE: bool = False  # set FRAUDAPP_SESSION_COOKIE_SECURE=true behind HTTPS
    REMEMBER_COOKIE_HTTPONLY: bool = True
    REMEMBER_COOKIE_SAMESITE: str | None = "Lax"
    PERMANENT_SESSION_LIFETIME: int | dt.timedelta = 8 * 3600  # seconds
    PROXY_COUNT: int = 0  # trusted reverse proxies in front of the app (they set X-Forwarded-*)
    LOGIN_FREE_FAILURES: int = 5  # failed logins for one name from one address ...
    LOGIN_ADDRESS_FREE_FAILURES: int = 20  # ... or from one address for any names, before back-off
    LOGIN_BACKOFF_SECONDS: float = 2.0  # the first wait after those, doubling with each failure ...
    LOGIN_BACKOFF_MAX_SECONDS: float = 900.0  # ... up to this
    LOGIN_FAILURE_WINDOW_SECONDS: float = 3600.0  # failures older than this are forgotten
    CARD_PRECISION_K: int = 100
    MONITOR_CARD_SCORE_FLOOR: float = 0.01  # customers scoring below this: not in card precision
    ALERT_WINDOW_DAYS: int = 14  # the rules below look at the last N days
    ALERT_F1_BELOW: float = 0.5  # ... F1 below this, when at least ALERT_MIN_LABELS labels exist
    ALERT_MIN_LABELS: int = 30
    ALERT_PSI_ABOVE: float = 0.25  # ... any feature's or the score's PSI above this
    ALERT_COVERAGE_BELOW: float = 0.05  # ... share of stored predictions with a label below this
    DRIFT_MIN_SAMPLES: int = 100  # fewer recent predictions than this: no PSI
    DRIFT_SAMPLE: int = 2000  # PSI from at most this many of the most recent predictions
    ALERT_WEBHOOK_URLS: TextList = []  # signed POSTs of new alerts
    WEBHOOK_SECRET: str | None = None  # signs outgoing and verifies incoming webhooks
    RETRAIN_TRAIN_DAYS: int = 28  # a retraining run trains on this many labelled days ...
    RETRAIN_DELAY_DAYS: int = 7  # ... then skips the label delay ...
    RETRAIN_VALIDATION_DAYS: int = 7  # ... and compares candidate and champion on the latest days
    # A run tries these training window lengths (days) with each of RETRAIN_PARAM_VARIANTS on
    # the validation fold and keeps the best by AP; empty: train on RETRAIN_TRAIN_DAYS as is.
    RETRAIN_WINDOW_CHOICES: IntList = [14, 28, 56]
    RETRAIN_PARAM_VARIANTS: dict[str, dict[str, Any]] = {
        "default": {},
        "wider": {"num_leaves": 31, "min_child_samples": 100},
    }
    RETRAIN_TRIAL_SPEEDUP: int = Field(default=4, ge=1)  # the trials learn this much faster
    RETRAIN_EVERY_DAYS: int | None = None  # e.g. 7 for a weekly scheduled run (off by default)
    RETRAIN_ON_ALERT: bool = False  # queue a run when `flask monitor` raises an alert
    PROMOTE_AP_MARGIN: float = 0.0  # promote when candidate AP >= champion AP - margin ...
    PROMOTE_MIN_LABELS: int = 1000  # ... and the training window had at least this many labels
    PROMOTE_SHADOW_DAYS: int = 0  # > 0: such a candidate goes in shadow first, and is promoted
    # once it has this many labelled days of shadow predictions at AP >= champion's - margin
    TRAINING_PARAMS: dict[str, Any] = {}  # LightGBM parameters over ml.training.DEFAULT_PARAMS
    TRAINER_POLL_SECONDS: float = 5.0
    TRAINER_HEARTBEAT_SECONDS: float = (
        5.0  # a running run's trainer updates its heartbeat this often
    )
    TRAINER_STALE_SECONDS: float = 20.0  # a running run silent this long is failed (3 beats + 5 s)
    TRAINER_NICE: int = 10  # CPU priority the trainer lowers itself by
    ROLE: Role = "all"  # "web" (a prediction node), "trainer", or "all" (both, one deployment)
    NODE_NAME: str | None = None  # this process on /admin/nodes (default: NODE_URL, else the host)
    NODE_URL: str | None = (
        None  # this node's base URL as the trainer reaches it, http://10.0.0.5:8000
    )
    NODE_SYNC_SECONDS: float = 10.0  # each worker checks the database's serving version this often
    NODES: TextList = []  # base URLs of prediction nodes told of model.published
    ARTIFACT_BASE_URL: str = "http://127.0.0.1:8000"  # the trainer's base URL as nodes reach it
    WEBHOOK_TIMEOUT_SECONDS: float = 5.0
    ARTIFACT_TIMEOUT_SECONDS: float = 20.0  # a node's artifact download (under gunicorn's 30 s)
    WEBHOOK_MAX_ATTEMPTS: int = 8  # a delivery is retried with exponential back-off ...
    WEBHOOK_BACKOFF_SECONDS: float = 2.0  # ... first after this, doubling each time (2, 4, ...)
    MAX_CONTENT_LENGTH: int | None = 2 * 1024 * 1024  # bytes of a request body; larger ones get 413
    JSON_MAX_DEPTH: int = 32  # API and webhook bodies nested deeper are refused with 400
    API_RATE_LIMIT: str = "6000/minute"  # API requests per token (Flask-Limiter notation)
    API_ADDRESS_RATE_LIMIT: str = "60/minute"  # API requests with no valid token, per address
    RATELIMIT_STORAGE_URI: str = "memory://"  # redis://127.0.0.1:6379/0: shared by workers
    RATELIMIT_KEY_PREFIX: str = "fraudapp"  # keys in a shared storage start with this
    RATELIMIT_HEADERS_ENABLED: bool = True  # X-RateLimit-* headers, and Retry-After on 429
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED: bool = True  # storage down: count in memory
    # "Score a file": uploads and scored files live in FILE_DIR (default instance/files) ...
    FILE_DIR: str | None = None
    FILE_MAX_BYTES: int = 300 * 1024 * 1024  # ... the largest upload there ...
    FILE_RESULT_HOURS: float = 24.0  # ... scored files kept this long
    FILE_JOBS_AT_ONCE: int = 2  # file jobs running at once, across all processes and nodes
    FILE_POLL_SECONDS: float = 2.0  # web workers look for file jobs this often (0: off)
    FILE_HEARTBEAT_SECONDS: float = 5.0  # a running file job's progress is saved this often
    FILE_STALE_SECONDS: float = 60.0  # a running file job silent this long is failed
    DEMO_CUSTOMERS: int = 600
    DEMO_TERMINALS: int = 1200
    DEMO_DAYS: int = 90


# Settings of the extensions (Flask-SQLAlchemy, Flask-WTF, Flask-Login) a deployment or a test may
# set besides the ones in Defaults. SQLALCHEMY_DATABASE_URI is not one: it comes from DATABASE_URL.
EXTENSION_SETTINGS: dict[str, Any] = {
    "SQLALCHEMY_ECHO": bool,
    "SQLALCHEMY_RECORD_QUERIES": bool,
    "SQLALCHEMY_BINDS": dict[str, Any],
    "WTF_CSRF_ENABLED": bool,
    "WTF_CSRF_CHECK_DEFAULT": bool,
    "WTF_CSRF_SECRET_KEY": str | bytes,
    "WTF_CSRF_METHODS": TextList,
    "WTF_CSRF_FIELD_NAME": str,
    "WTF_CSRF_HEADERS": TextList,
    "WTF_CSRF_SSL_STRICT": bool,
    "WTF_I18N_ENABLED": bool,
    "REMEMBER_COOKIE_NAME": str,
    "REMEMBER_COOKIE_DOMAIN": str | None,
    "REMEMBER_COOKIE_PATH": str,
    "REMEMBER_COOKIE_DURATION": int | dt.timedelta,
    "REMEMBER_COOKIE_SECURE": bool,
    "REMEMBER_COOKIE_REFRESH_EACH_REQUEST": bool,
    "SESSION_PROTECTION": str | None,
    "USE_SESSION_FOR_NEXT": bool,
    "LOGIN_DISABLED": bool,
}


def _kind(default: Any) -> Any:
    """The type of one of Flask's own settings, as its default says (Any where it is None)."""
    return type(default) if isinstance(default, bool | int | str) else Any


# Flask's own settings and the extensions': checked when set, left to their owners otherwise.
Others = create_model(
    "Others",
    __config__=ConfigDict(extra="forbid"),
    **{
        name: (_kind(value), None)
        for name, value in Flask.default_config.items()
        if name not in Defaults.model_fields
    },
    **{name: (kind, None) for name, kind in EXTENSION_SETTINGS.items()},
)
KNOWN = frozenset(Defaults.model_fields) | frozenset(Others.model_fields)


def load(config: Config, instance_path: str, test_config: Mapping | None = None) -> None:
    """Defaults → instance/config.py → FRAUDAPP_* environment → test config, into `config`,
    parsed to the settings' types; ConfigError naming every unknown or ill-typed setting."""
    names = _merge(config, instance_path, test_config or {})
    errors = [
        f"{names[key]} is not a fraudapp setting{_did_you_mean(key)}"
        for key in names
        if key not in KNOWN
    ]
    errors += _parse(config, Defaults, list(Defaults.model_fields), names)
    errors += _parse(config, Others, [key for key in names if key in Others.model_fields], names)
    if errors:
        raise ConfigError("\n".join(errors))


def _merge(config: Config, instance_path: str, test_config: Mapping) -> dict[str, str]:
    """The layers, each over the one before; the settings the deployment or test set, each
    with the name that says where."""
    config.update(Defaults().model_dump())
    from_file = Config(instance_path)
    from_file.from_pyfile("config.py", silent=True)
    config.update(from_file)
    environment = _environment_keys()
    config.from_prefixed_env(PREFIX.rstrip("_"))
    for key in ENVIRONMENT_ONLY:  # read from the environment by others, not app settings
        config.pop(key, None)
    config.update(_verbatim_text(environment))
    config.update(test_config)
    names = {key: f"{PREFIX}{key} (from instance/config.py)" for key in from_file}
    names |= {key: PREFIX + key for key in environment}
    return names | {key: f"{PREFIX}{key} (from the test config)" for key in test_config}


def _environment_keys() -> set[str]:
    """The settings given as FRAUDAPP_* variables (FRAUDAPP_A__B sets key B of setting A)."""
    keys = {name[len(PREFIX) :].split("__")[0] for name in os.environ if name.startswith(PREFIX)}
    return keys - ENVIRONMENT_ONLY


def _verbatim_text(keys: set[str]) -> dict:
    """Text settings as written: Flask reads variables as JSON, which would make
    FRAUDAPP_SECRET_KEY=1234 a number."""
    return {
        key: os.environ[PREFIX + key] for key in keys if PREFIX + key in os.environ and _text(key)
    }


def _text(key: str) -> bool:
    """Whether a setting of Defaults takes text (str, or str or something else)."""
    kind = Defaults.model_fields[key].annotation if key in Defaults.model_fields else None
    return kind is str or (isinstance(kind, types.UnionType) and str in get_args(kind))


def _parse(config: Config, model: type[BaseModel], keys, names: dict) -> list[str]:
    """Parse `keys` of `config` with `model`, store the typed values; the errors, one a setting."""
    try:
        parsed = model.model_validate({key: config[key] for key in keys})
    except ValidationError as exc:
        messages = {}
        for error in exc.errors():
            key = error["loc"][0]
            messages.setdefault(key, error["msg"][:1].lower() + error["msg"][1:])
        return [f"{names.get(key, PREFIX + key)}: {message}" for key, message in messages.items()]
    config.update(parsed.model_dump(exclude_unset=True))
    return []


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, KNOWN, n=1)
    return f" (did you mean {PREFIX}{close[0]}?)" if close else ""


def resolve_paths(config: dict, instance_path: str) -> None:
    """Fill the defaults that live in the instance folder and the SQLAlchemy URI."""
    url = config.get("DATABASE_URL") or "sqlite:///" + os.path.join(instance_path, "fraudapp.db")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    config["SQLALCHEMY_DATABASE_URI"] = url
    if url.startswith("postgresql"):  # a cut network fails a connection in seconds, not minutes
        options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        connect_args = {"connect_timeout": int(config["DATABASE_CONNECT_TIMEOUT"])}
        options["connect_args"] = connect_args | dict(options.get("connect_args") or {})
        config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    config["MODEL_DIR"] = config.get("MODEL_DIR") or os.path.join(instance_path, "models")
    config["FILE_DIR"] = config.get("FILE_DIR") or os.path.join(instance_path, "files")
