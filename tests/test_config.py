"""Configuration layering, typed settings and the secret-key rule."""

import datetime as dt
import re

import pytest

from fraudapp import create_app
from fraudapp.config import ConfigError
from fraudapp.ml.training import DEFAULT_PARAMS, Windows
from fraudapp.services.serving import registry
from fraudapp.services.training.train import train_and_publish


def test_a_server_refuses_to_start_without_a_secret_key(monkeypatch, tmp_path):
    monkeypatch.delenv("FRAUDAPP_SECRET_KEY", raising=False)
    monkeypatch.setenv("FRAUDAPP_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="FRAUDAPP_SECRET_KEY"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})


def test_environment_overrides_instance_config(monkeypatch, tmp_path):
    (tmp_path / "config.py").write_text("SECRET_KEY = 'from-file'\nEXPLAIN_TOP = 2\n")
    monkeypatch.setenv("FRAUDAPP_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("FRAUDAPP_EXPLAIN_TOP", "6")
    monkeypatch.setenv("FRAUDAPP_DATABASE_URL", "postgresql://u@db.example/fraud")
    app = create_app()
    assert app.config["SECRET_KEY"] == "from-file"
    assert app.config["EXPLAIN_TOP"] == 6
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db.example/fraud"
    assert app.config["MODEL_DIR"] == str(tmp_path / "models")


def _create(tmp_path, **test_config):
    return create_app(
        {"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"} | test_config
    )


@pytest.fixture
def env(monkeypatch, tmp_path):
    """Set FRAUDAPP_* variables, on an empty instance folder."""
    monkeypatch.setenv("FRAUDAPP_INSTANCE_PATH", str(tmp_path))
    return lambda name, value: monkeypatch.setenv(f"FRAUDAPP_{name}", value)


def test_false_in_the_environment_means_false(env, tmp_path):
    env("RETRAIN_ON_ALERT", "False")
    env("SESSION_COOKIE_SECURE", "0")
    env("WTF_CSRF_ENABLED", "false")
    env("MAX_BATCH", "5")
    app = _create(tmp_path)
    assert app.config["RETRAIN_ON_ALERT"] is False
    assert app.config["SESSION_COOKIE_SECURE"] is False
    assert app.config["WTF_CSRF_ENABLED"] is False
    assert app.config["MAX_BATCH"] == 5


@pytest.mark.parametrize(
    "value",
    [
        '["http://a:8000", "http://b:8000"]',
        "http://a:8000,http://b:8000",
        " http://a:8000, http://b:8000, ",
    ],
)
def test_lists_from_json_or_commas(env, tmp_path, value):
    env("NODES", value)
    env("ALERT_WEBHOOK_URLS", value)
    app = _create(tmp_path)
    assert app.config["NODES"] == ["http://a:8000", "http://b:8000"]
    assert app.config["ALERT_WEBHOOK_URLS"] == ["http://a:8000", "http://b:8000"]


def test_dicts_from_json_and_text_as_written(env, tmp_path):
    env("TRAINING_PARAMS", '{"num_boost_round": 20, "max_bin": 63}')
    env("SQLALCHEMY_ENGINE_OPTIONS__pool_size", "3")
    env("WEBHOOK_SECRET", "12345678901234567890")
    env("NODE_NAME", "null")
    app = _create(tmp_path)
    assert app.config["TRAINING_PARAMS"] == {"num_boost_round": 20, "max_bin": 63}
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"] == {
        "pool_pre_ping": True,
        "pool_use_lifo": True,
        "pool_size": 3,
    }
    assert app.config["WEBHOOK_SECRET"] == "12345678901234567890"
    assert app.config["NODE_NAME"] == "null"


def test_variables_read_outside_the_config_are_allowed(env, tmp_path):
    env("BIND", "127.0.0.1:8123")
    env("WORKERS", "3")
    env("TRAINING_THREADS", "1")
    assert _create(tmp_path).config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "MODEL_CHECK_INTERVAL",
            "abc",
            "FRAUDAPP_MODEL_CHECK_INTERVAL: input should be a valid number",
        ),
        (
            "RETRAIN_ON_ALERT",
            "sometimes",
            "FRAUDAPP_RETRAIN_ON_ALERT: input should be a valid boolean",
        ),
        (
            "RETRAIN_EVERY_DAYS",
            "7.5",
            "FRAUDAPP_RETRAIN_EVERY_DAYS: input should be a valid integer",
        ),
        ("ROLE", "everything", "FRAUDAPP_ROLE: input should be 'all', 'web' or 'trainer'"),
        ("TRAINING_PARAMS", "max_bin=63", "FRAUDAPP_TRAINING_PARAMS: input should be a valid dict"),
        ("TESTING", "maybe", "FRAUDAPP_TESTING: input should be a valid boolean"),
        (
            "RETRAIN_EVRY_DAYS",
            "7",
            "FRAUDAPP_RETRAIN_EVRY_DAYS is not a fraudapp setting "
            "(did you mean FRAUDAPP_RETRAIN_EVERY_DAYS?)",
        ),
        ("SQLALCHEMY_DATABASE_URI", "sqlite://", "FRAUDAPP_SQLALCHEMY_DATABASE_URI is not a"),
    ],
)
def test_a_bad_or_unknown_variable_refuses_to_start(
    env, monkeypatch, tmp_path, name, value, message
):
    monkeypatch.delenv("FRAUDAPP_TESTING", raising=False)
    env(name, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})


def test_instance_file_and_test_config_are_checked_too(monkeypatch, tmp_path):
    (tmp_path / "config.py").write_text("EXPLAIN_TOP = 'four'\nNODE = 'http://a'\n")
    monkeypatch.setenv("FRAUDAPP_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(ConfigError) as refused:
        _create(tmp_path, MAX_BATCH="many", WTF_CSRF_ENABLED=False)
    assert set(str(refused.value).splitlines()) == {
        "FRAUDAPP_NODE (from instance/config.py) is not a fraudapp setting "
        "(did you mean FRAUDAPP_NODES?)",
        "FRAUDAPP_EXPLAIN_TOP (from instance/config.py): input should be a valid integer, "
        "unable to parse string as an integer",
        "FRAUDAPP_MAX_BATCH (from the test config): input should be a valid integer, "
        "unable to parse string as an integer",
    }


def test_training_params_go_over_the_defaults(app, stored_history):
    app.config["TRAINING_PARAMS"] = {"num_boost_round": 5, "max_bin": 15}
    version, result = train_and_publish(Windows(dt.date(2018, 4, 16)))
    params = registry().meta(version)["params"]
    assert params == result.params == DEFAULT_PARAMS | {"num_boost_round": 5, "max_bin": 15}
    assert result.booster.num_trees() == 5
