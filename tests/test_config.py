"""Configuration layering and the secret-key rule."""

import pytest

from fraudapp import create_app


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
