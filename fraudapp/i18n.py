"""The languages of the pages: English and Brazilian Portuguese (Flask-Babel).

The language is the visitor's choice (the switch in the navigation bar, kept in a cookie), else the
best match of the request's Accept-Language, else English. The JSON API, the webhooks and the
health endpoints always answer in English: machine clients read them.
"""

from __future__ import annotations

import json
import os

from flask import Flask, has_request_context, request
from flask_babel import LazyString, force_locale, format_decimal, get_locale, gettext, refresh

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


class Message:
    """A message the services write in English with named parameters (`%(line)s`), read in the
    reader's language: str() gives the request's language inside a request and English outside
    one (CLI, logs, background threads). A parameter may be a Message itself.

    `stored()` keeps it in a text column: the English text itself when it has no parameters, a
    small JSON object when it has; `shown()` reads a stored text back in the reader's language
    (texts no catalog knows, as older rows may hold, stay as they are). `make i18n` extracts
    `Message("...")` like `gettext("...")`."""

    def __init__(self, msgid: str, **params) -> None:
        self.msgid, self.params = msgid, {k: _param(v) for k, v in params.items()}

    def __str__(self) -> str:
        if not self.params:
            return gettext(self.msgid)
        return gettext(self.msgid, **{k: _shown_param(v) for k, v in self.params.items()})

    def __repr__(self) -> str:
        return f"Message({self.msgid!r}, **{self.params!r})"

    def english(self) -> str:
        """The message in English, whatever the request's language (for the API and logs)."""
        with force_locale(DEFAULT):
            return str(self)

    def _as_dict(self) -> dict:
        params = {k: v._as_dict() if isinstance(v, Message) else v for k, v in self.params.items()}
        return {"msgid": self.msgid, "params": params}

    def stored(self) -> str:
        """The message as a text column keeps it."""
        if not self.params:
            return self.msgid
        return json.dumps(self._as_dict(), ensure_ascii=False)

    @classmethod
    def _from_dict(cls, data: dict) -> Message:
        params = {
            k: cls._from_dict(v) if isinstance(v, dict) else v for k, v in data["params"].items()
        }
        return cls(data["msgid"], **params)

    @classmethod
    def read(cls, text: str) -> Message:
        """A stored text back as a Message."""
        if text.startswith('{"msgid"'):
            try:
                return cls._from_dict(json.loads(text))
            except (ValueError, KeyError, TypeError, AttributeError):
                pass
        return cls(text)


def _param(value):
    """A parameter as a Message keeps it: an exception as its message, a `lazy_gettext` string
    as a Message (translated when shown), a number as it is (a float is written the reader's
    way when shown)."""
    if isinstance(value, BaseException):
        return _param(value.args[0]) if len(value.args) == 1 else str(value)
    if isinstance(value, LazyString):
        if value._func is gettext and len(value._args) == 1:
            return Message(value._args[0], **value._kwargs)
        if value._func is format_decimal and len(value._args) == 1:
            return value._args[0]
    if isinstance(value, Message | str | int | float) or value is None:
        return value
    return str(value)


def _shown_param(value):
    return format_decimal(value) if isinstance(value, float) else value


def shown(text: str | None) -> str:
    """A stored message (see Message) in the reader's language; '' for none."""
    return str(Message.read(text)) if text else ""


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
    app.add_template_filter(shown, "shown")
