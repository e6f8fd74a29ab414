"""The languages of the pages: English and Brazilian Portuguese (Flask-Babel).

The language is the visitor's choice (the switch in the navigation bar, kept in a cookie), else the
best match of the request's Accept-Language, else English. The JSON API, the webhooks and the
health endpoints always answer in English: machine clients read them.
"""

from __future__ import annotations

import os

from flask import Flask, has_request_context, request
from flask_babel import get_locale, refresh

from .extensions import babel

LANGUAGES = {"en": "English", "pt_BR": "Português"}
DEFAULT = "en"
COOKIE = "fraudapp_lang"
COOKIE_SECONDS = 365 * 24 * 3600
TRANSLATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "translations")
ENGLISH_ONLY = ("api", "hooks", "health", "artifacts")  # blueprints machine clients call


def select_locale() -> str:
    """The language of this request: the cookie's choice, else Accept-Language, else English."""
    if not has_request_context() or request.blueprint in ENGLISH_ONLY:
        return DEFAULT
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    for tag, _quality in request.accept_languages:  # best first
        primary = tag.lower().replace("_", "-").split("-")[0]
        if primary == "pt":  # pt-PT and plain pt read Brazilian Portuguese better than English
            return "pt_BR"
        if primary == "en":
            return DEFAULT
    return DEFAULT


def current_language() -> str:
    """The code of the language this page is shown in ("en" or "pt_BR")."""
    locale = get_locale()
    return str(locale) if locale is not None else DEFAULT


def html_lang() -> str:
    """The page's language as HTML's lang attribute spells it (en, pt-BR)."""
    return current_language().replace("_", "-")


def register_babel(app: Flask) -> None:
    """Wire Flask-Babel with the locale selector; give the templates the language switch's data."""
    babel.init_app(
        app,
        default_locale=DEFAULT,
        default_translation_directories=TRANSLATIONS,
        locale_selector=select_locale,
    )
    app.before_request(refresh)  # Flask-Babel keeps the choice in `g`, which may outlive a request
    app.jinja_env.globals.update(
        languages=LANGUAGES, current_language=current_language, html_lang=html_lang
    )
