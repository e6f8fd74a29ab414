"""Jinja filters shared by the templates: numbers and times as people of the page's language read
them (1,234.56 in English, 1.234,56 in Portuguese)."""

from __future__ import annotations

import datetime as dt
import math

from flask import Flask
from flask_babel import format_datetime, format_decimal, gettext

from .i18n import current_language
from .wording import feature_phrase, reason_text

DASH = "—"
# Times stay in UTC (the pages say so); the order of day, month and year follows the language.
TIME_PATTERNS = {
    "en": ("yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm"),
    "pt_BR": ("dd/MM/yyyy HH:mm:ss", "dd/MM/yyyy HH:mm"),
}


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def num(value, digits: int = 3) -> str:
    """A number with `digits` decimals and the language's separators; a dash for none or NaN."""
    if _missing(value):
        return DASH
    return format_decimal(value, format="#,##0" + ("." + "0" * digits if digits else ""))


def pct(value, digits: int = 1) -> str:
    """A share as a percentage (0.25 → 25.0 %); a dash for none."""
    return DASH if _missing(value) else num(value * 100, digits) + " %"


def count(value) -> str:
    """A whole number with the language's thousands separator; a dash for none."""
    return DASH if _missing(value) else format_decimal(value, format="#,##0")


def figure(value) -> str:
    """A measured value with up to four decimals (0.0123, 42, 1,234.5); a dash for none."""
    return DASH if _missing(value) else format_decimal(value, format="#,##0.####")


def when(value: dt.datetime | dt.date | str | None, seconds: bool = True) -> str:
    """A UTC time (or its ISO text) to the second or minute, in the language's order; a dash for
    none."""
    if value is None:
        return DASH
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    patterns = TIME_PATTERNS.get(current_language(), TIME_PATTERNS["en"])
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return format_datetime(value, patterns[0] if seconds else patterns[1], rebase=False)


def day(value: dt.date | str | None) -> str:
    """A calendar day in the language's order (2026-12-01, 01/12/2026); a dash for none."""
    if value is None:
        return DASH
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value.strftime("%d/%m/%Y" if current_language() == "pt_BR" else "%Y-%m-%d")


def chart_labels() -> dict[str, str]:
    """The names of the admin charts' series, in the page's language (static/admin.js)."""
    return {
        "f1": "F1",
        "ap": "AP",
        "precision": gettext("Precision"),
        "recall": gettext("Recall"),
        "coverage": gettext("Coverage"),
        "genuine": gettext("genuine"),
        "fraud": gettext("fraud"),
        "unlabelled": gettext("unlabelled"),
        "scored": gettext("scored"),
        "stored": gettext("stored"),
    }


def status_words() -> dict[str, str]:
    """The states of training runs and file jobs, in the page's language."""
    return {
        "queued": gettext("queued"),
        "running": gettext("running"),
        "succeeded": gettext("succeeded"),
        "failed": gettext("failed"),
        "cancelled": gettext("cancelled"),
        "done": gettext("done"),
        "pending": gettext("pending"),
        "delivered": gettext("delivered"),
    }


def promotion_words() -> dict[str, str]:
    """What became of a run's version, in the page's language."""
    return {"promoted": gettext("promoted"), "awaiting approval": gettext("awaiting approval")}


def label_words() -> dict[str, str]:
    """A decision or label, and where a label came from, in the page's language."""
    return {
        "fraud": gettext("fraud"),
        "genuine": gettext("genuine"),
        "import": gettext("imported"),
        "feedback": gettext("feedback"),
        "analyst": gettext("analyst"),
    }


def reason_words() -> dict[str, str]:
    """Why a training run was asked for, in the page's language."""
    return {
        "admin": gettext("admin"),
        "cli": gettext("cli"),
        "alert": gettext("alert"),
        "schedule": gettext("schedule"),
    }


def register_template_filters(app: Flask) -> None:
    """Make the filters available to every template."""
    app.jinja_env.filters.update(num=num, pct=pct, count=count, figure=figure, when=when, day=day)
    app.jinja_env.globals.update(
        reason_text=reason_text,
        feature_phrase=feature_phrase,
        chart_labels=chart_labels,
        status_words=status_words,
        promotion_words=promotion_words,
        reason_words=reason_words,
        label_words=label_words,
    )
