"""Jinja filters shared by the templates: numbers and times as people read them."""

from __future__ import annotations

import datetime as dt
import math

from flask import Flask

DASH = "—"


def num(value, digits: int = 3) -> str:
    """A number with `digits` decimals; a dash for none or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value:.{digits}f}"


def pct(value, digits: int = 1) -> str:
    """A share as a percentage; a dash for none."""
    return DASH if value is None else f"{value * 100:.{digits}f} %"


def when(value: dt.datetime | None, seconds: bool = True) -> str:
    """A UTC time to the second (or minute); a dash for none."""
    if value is None:
        return DASH
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def register_template_filters(app: Flask) -> None:
    """Make the filters available to every template."""
    app.jinja_env.filters.update(num=num, pct=pct, when=when)
