"""fraudapp: fraud screening of card transactions with a LightGBM model registry."""

from __future__ import annotations

import os
import secrets

import click
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config as settings
from . import telemetry
from .admin import bp as admin_bp
from .api import bp as api_bp
from .api import docs as api_docs_bp
from .auth import bp as auth_bp
from .cli import register_commands
from .database import configure_sqlite
from .errors import keep_retry_after, register_errorhandlers
from .extensions import csrf, db, limiter, login_manager, migrate
from .feedback import bp as feedback_bp
from .files import bp as files_bp
from .health import bp as health_bp
from .hooks import artifacts, hooks
from .i18n import register_babel
from .language import bp as language_bp
from .ml.registry import Registry, ServingModel
from .predict import bp as predict_bp
from .routing import register_converters
from .templating import register_template_filters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application: configuration, extensions, model, blueprints, errors, commands."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        instance_path=os.environ.get("FRAUDAPP_INSTANCE_PATH") or os.path.join(ROOT, "instance"),
        template_folder=os.path.join(ROOT, "templates"),
        static_folder=os.path.join(ROOT, "static"),
    )
    configure(app, test_config)
    register_proxies(app)
    register_extensions(app)
    register_security(app)
    register_model(app)
    register_converters(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_template_filters(app)
    register_commands(app)
    telemetry.time_requests(app)
    return app


def configure(app: Flask, test_config: dict | None) -> None:
    """Defaults → instance/config.py → FRAUDAPP_* environment → test config, parsed and checked."""
    settings.load(app.config, app.instance_path, test_config)
    settings.resolve_paths(app.config, app.instance_path)
    _require_secret_key(app)


def _require_secret_key(app: Flask) -> None:
    """No SECRET_KEY: an error for a server; debug, tests and CLI commands get a random one."""
    if app.config.get("SECRET_KEY"):
        return
    if not (app.debug or app.testing or click.get_current_context(silent=True)):
        raise RuntimeError(
            "FRAUDAPP_SECRET_KEY is not set (run `flask init-demo` once, or set it "
            "in the environment or instance/config.py)"
        )
    app.config["SECRET_KEY"] = secrets.token_hex(32)


def register_proxies(app: Flask) -> None:
    """Behind PROXY_COUNT reverse proxies, take the client's address, scheme and host from the
    X-Forwarded-* headers they set (never from a client's own headers when PROXY_COUNT is 0)."""
    count = int(app.config["PROXY_COUNT"])
    if count > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)


def register_extensions(app: Flask) -> None:
    """Database, migrations, CSRF, logins and rate limits."""
    os.makedirs(app.instance_path, exist_ok=True)
    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(ROOT, "migrations"), render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    register_babel(app)
    keep_retry_after(app)  # before the limiter: it runs after the limiter's headers
    limiter.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            configure_sqlite(app)


def register_security(app: Flask) -> None:
    """Security headers and the request body limit."""
    from .security import register

    register(app)


def register_model(app: Flask) -> None:
    """The serving model, loaded on first use and swapped when the registry's pointer changes
    (a fallback version serves while the released one cannot be loaded)."""
    registry = Registry(app.config["MODEL_DIR"])
    app.extensions["fraudapp.model"] = ServingModel(
        registry,
        app.config["MODEL_CHECK_INTERVAL"],
        app.logger,
        retry_interval=float(app.config["MODEL_RETRY_SECONDS"]),
        on_change=telemetry.record_model_state,
    )


def register_blueprints(app: Flask) -> None:
    """The pages, API and webhook receiver of a prediction node; the artifact endpoint of a
    trainer; all of them in the embedded default (ROLE "all")."""
    role = app.config["ROLE"]
    app.register_blueprint(health_bp)
    if role in ("web", "all"):
        app.register_blueprint(predict_bp)
        app.register_blueprint(auth_bp)
        app.register_blueprint(language_bp)
        app.register_blueprint(feedback_bp)
        app.register_blueprint(files_bp)
        app.register_blueprint(admin_bp, url_prefix="/admin")
        app.register_blueprint(api_bp, url_prefix="/api/v1")
        app.register_blueprint(api_docs_bp)
        app.register_blueprint(hooks)
        csrf.exempt(api_bp)
        csrf.exempt(hooks)
    if role in ("trainer", "all"):
        app.register_blueprint(artifacts)
