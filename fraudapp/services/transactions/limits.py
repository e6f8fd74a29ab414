"""What a transaction may hold: the limits every input path (form, API, import) checks.

The limits live here and nowhere else. The small `check_*` functions raise ValueError with the
message a person sees next to the field; the API's schemas, the forms and the import call them
(the import checks whole columns at once against the same constants and messages).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re

from flask import current_app
from flask_babel import LazyString, format_decimal, lazy_gettext

MAX_ID = 64  # characters of a customer or terminal id (opaque text: card tokens, merchant ids)
MAX_AMOUNT = 1_000_000.0
EARLIEST = dt.datetime(1990, 1, 1)  # the oldest transaction time accepted (the latest: now)
MAX_TRANSACTION_ID = 64  # characters of a client's transaction id
MAX_NUMBER = 10**15  # any decimal typed into a form stays below this (Decimal arithmetic is safe)
MAX_ROW_ID = 2**63 - 1  # the largest id a database row can have: larger ids in URLs are 404
MAX_PAGE = 1_000_000  # larger page numbers are read as this one
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # control characters, lone surrogates

# The messages are lazy: a page shows them in its language, the API and the CLI in English.
ID_MESSAGE = lazy_gettext("Use 1 to %(max)s characters.", max=MAX_ID)
ID_TYPE_MESSAGE = lazy_gettext(
    "Use a text of 1 to %(max)s characters or a whole number.", max=MAX_ID
)
AMOUNT_MESSAGE = lazy_gettext(
    "Use an amount from 0 to %(max)s.", max=LazyString(format_decimal, MAX_AMOUNT)
)
EARLY_MESSAGE = lazy_gettext("Use a date from %(year)s on.", year=EARLIEST.year)
NUMBER_MESSAGE = "Not a valid decimal value."  # WTForms' own message (and its translations)
CONTROL_MESSAGE = lazy_gettext("Remove the control characters.")


def latest_time() -> dt.datetime:
    """The latest transaction time accepted now (naive UTC): the server's clock plus the
    configured clock-skew allowance."""
    skew = dt.timedelta(seconds=current_app.config["CLOCK_SKEW_SECONDS"])
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) + skew


def future_message(latest: dt.datetime) -> LazyString:
    """Why a transaction time is refused for being in the future (lazy: a page shows it in its
    language, the import's refusals keep it translatable)."""
    return lazy_gettext(
        "Use a time no later than now (%(latest)s UTC): it is in the future.",
        latest=latest.strftime("%Y-%m-%d %H:%M"),
    )


def check_time(value: dt.datetime) -> dt.datetime:
    """A transaction time as naive UTC, from 1990 up to now (plus the clock-skew allowance)."""
    if value.tzinfo is not None:
        try:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00+01:00 or 9999-12-31T23:59-01:00
            value = dt.datetime.min if value.year < EARLIEST.year else dt.datetime.max
    if value < EARLIEST:
        raise ValueError(EARLY_MESSAGE)
    latest = latest_time()
    if value > latest:
        raise ValueError(future_message(latest))
    return value


def check_id(value: str | int) -> str:
    """A customer or terminal id as the text stored: an opaque text (surrounding whitespace
    stripped) of 1 to MAX_ID characters without control characters; a whole number becomes its
    decimal text, so 42 and "42" are the same customer. Anything else (a boolean, a fraction)
    is refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= 10**MAX_ID:  # more digits than an id holds (and no huge int to text)
            raise ValueError(ID_MESSAGE)
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(ID_TYPE_MESSAGE)
    value = value.strip()
    if not 1 <= len(value) <= MAX_ID:
        raise ValueError(ID_MESSAGE)
    return check_text(value)


def check_amount(value: float | decimal.Decimal) -> float:
    """An amount as a float, from 0 to MAX_AMOUNT (never NaN or infinite)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(AMOUNT_MESSAGE) from None
    if not (math.isfinite(number) and 0 <= number <= MAX_AMOUNT):
        raise ValueError(AMOUNT_MESSAGE)
    return number


def check_number(value: decimal.Decimal) -> float:
    """A typed decimal that arithmetic can use: finite and below MAX_NUMBER in size."""
    if not (value.is_finite() and abs(value) < MAX_NUMBER):
        raise ValueError(NUMBER_MESSAGE)
    return float(value)


def check_text(value: str) -> str:
    """Text without control characters (NUL, line breaks, ...) or lone surrogates, which no
    id, name or URL holds and some databases cannot store."""
    if CONTROL.search(value):
        raise ValueError(CONTROL_MESSAGE)
    return value


def row_id(text: str) -> int:
    """A row id from a form (ValueError beyond the ids a database row can have)."""
    number = int(text)
    if not 0 <= number <= MAX_ROW_ID:
        raise ValueError(f"{text!r} is not a row id")
    return number


def page_number(text: str) -> int:
    """A page number from a query string, read into 1..MAX_PAGE (ValueError if not a number)."""
    return min(max(int(text), 1), MAX_PAGE)


def utc_midnight(day: dt.date, plus_days: int = 0) -> dt.datetime:
    """Midnight UTC at the start of `day` plus some days; past the calendar's ends, its ends."""
    try:
        day = day + dt.timedelta(days=plus_days)
    except OverflowError:
        edge = dt.datetime.max if plus_days > 0 else dt.datetime.min
        return edge.replace(tzinfo=dt.UTC)
    return dt.datetime.combine(day, dt.time(), dt.UTC)
