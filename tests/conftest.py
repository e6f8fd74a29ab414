"""Fixtures: an app on a temporary database and model dir, a small simulated history and a model.

Set FRAUDAPP_DATABASE_URL to a PostgreSQL URL to run the whole suite on PostgreSQL; the default is a
temporary SQLite file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from fraudapp import config as settings
from fraudapp import create_app
from fraudapp.extensions import db
from fraudapp.ml.simulate import simulate
from fraudapp.services import tokens
from fraudapp.services.training.train import latest_windows, train_and_publish
from fraudapp.services.transactions import counts, history

HANDBOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "handbook"
HANDBOOK_RAW = HANDBOOK / "transactions_raw_2018-04-01_to_2018-08-31.csv.gz"
HANDBOOK_TRANSFORMED = HANDBOOK / "transactions_transformed_2018-04-01_to_2018-08-31.csv.gz"
SIM_START = "2018-04-01"
# Small, fast models for tests that need a model but do not measure its quality (those train
# with fraudapp.ml.training.DEFAULT_PARAMS).
FAST_TRAINING_PARAMS = {"num_boost_round": 60, "learning_rate": 0.1, "max_bin": 63}


def handbook_file(path: Path) -> Path:
    """The Handbook file, or a skip saying why it is missing."""
    if not path.exists():
        pytest.skip(f"Handbook data not found at {path} (../shared is absent)")
    return path


@pytest.fixture(scope="session", autouse=True)
def instance_path(tmp_path_factory) -> Path:
    """A temporary instance folder, so tests never touch the repository's instance/."""
    path = tmp_path_factory.mktemp("instance")
    os.environ["FRAUDAPP_INSTANCE_PATH"] = str(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def one_training_thread() -> None:
    """LightGBM on one thread: on a shared machine its threads spend their time waiting for each
    other (FRAUDAPP_TRAINING_THREADS, also read by the commands tests run in subprocesses)."""
    os.environ.setdefault("FRAUDAPP_TRAINING_THREADS", "1")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    """PostgreSQL when FRAUDAPP_DATABASE_URL says so, else a temporary SQLite file."""
    return os.environ.get("FRAUDAPP_DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    )


@pytest.fixture(scope="session")
def simulated_frame():
    """A small simulated Handbook-format history: 45 days from 2018-04-01."""
    return simulate(
        n_customers=600, n_terminals=1200, start_date=SIM_START, n_days=45, random_state=1
    )


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory, database_url, simulated_frame) -> Path:
    """A model directory holding one model trained on the simulated history."""
    model_dir = tmp_path_factory.mktemp("registry")
    app = _make_app(database_url, model_dir)
    with app.app_context():
        _reset_schema()
        history.import_handbook_frame(simulated_frame, "simulate")
        train_and_publish(latest_windows(), promote=True)
        _empty_tables()
        db.engine.dispose()
    return model_dir


def _make_app(database_url: str, model_dir: Path):
    return create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "MODEL_DIR": str(model_dir),
            "WTF_CSRF_ENABLED": False,
            "MODEL_CHECK_INTERVAL": 0.0,
            "TRAINING_PARAMS": FAST_TRAINING_PARAMS,
        }
    )


def settings_of(app) -> dict:
    """An app's settings, to make another app like it (without what the factory derives)."""
    return {key: value for key, value in app.config.items() if key in settings.KNOWN}


def _reset_schema() -> None:
    db.drop_all()
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.create_all()


def _empty_tables() -> None:
    db.session.remove()
    with db.engine.begin() as connection:
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def app(database_url, trained_registry, tmp_path):
    """An app on empty tables with its own copy of the trained registry."""
    model_dir = tmp_path / "models"
    shutil.copytree(trained_registry, model_dir)
    app = _make_app(database_url, model_dir)
    with app.app_context():
        yield app
        with contextlib.suppress(Exception):  # no late write of its counts into the next test's
            counts.flush()
        _empty_tables()
        db.engine.dispose()


@pytest.fixture
def client(app):
    """A test client."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner."""
    return app.test_cli_runner()


@pytest.fixture
def stored_history(app, simulated_frame):
    """The simulated history imported into the database."""
    history.import_handbook_frame(simulated_frame, "simulate")
    return simulated_frame


@pytest.fixture
def token(app) -> str:
    """A valid API token."""
    return tokens.create_token("tests")


@pytest.fixture
def auth(token) -> dict:
    """Authorization headers for the API."""
    return {"Authorization": f"Bearer {token}"}


def after_history(days: float = 1.0) -> str:
    """An ISO datetime shortly after the simulated history ends."""
    end = dt.datetime.fromisoformat(SIM_START) + dt.timedelta(days=45)
    return (end + dt.timedelta(days=days) - dt.timedelta(hours=12)).isoformat()


@pytest.fixture
def users(app) -> dict:
    """An analyst and an admin (password "password-123")."""
    from fraudapp.services import accounts

    return {
        role: accounts.create_user(role, role, "password-123").username
        for role in ("analyst", "admin")
    }


def login(client, username: str, password: str = "password-123", next_url: str = "", ip: str = ""):
    """Log a test client in (from address `ip` when given)."""
    return client.post(
        f"/login?next={next_url}" if next_url else "/login",
        data={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": ip} if ip else {},
    )


def predict(client, auth, **overrides) -> dict:
    """Score one consented transaction through the API; the response body."""
    body = {
        "tx_datetime": after_history(),
        "customer_id": 12,
        "terminal_id": 40,
        "amount": 42.5,
        "consent": True,
    } | overrides
    response = client.post("/api/v1/predictions", json=body, headers=auth)
    assert response.status_code == 201, response.get_json()
    return response.get_json()
