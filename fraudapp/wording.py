"""A score's reasons in the page's language: each model feature as a phrase, and whether it
raised or lowered the risk. The ML core gives the feature's name, value and contribution (and an
English text for the CSV and the API); the pages word them here."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask_babel import format_decimal, gettext, ngettext

from .ml import features

DELAY = features.TERMINAL_DELAY_DAYS


def _customer_count(days: int) -> str:
    return ngettext(
        "the customer's number of transactions in the last day",
        "the customer's number of transactions in the last %(num)d days",
        days,
    )


def _customer_average(days: int) -> str:
    return ngettext(
        "the customer's average amount over the last day",
        "the customer's average amount over the last %(num)d days",
        days,
    )


def _terminal_count(days: int) -> str:
    return ngettext(
        "the terminal's number of transactions over the day ending %(delay)d days ago",
        "the terminal's number of transactions over the %(num)d days ending %(delay)d days ago",
        days,
        delay=DELAY,
    )


def _terminal_risk(days: int) -> str:
    return ngettext(
        "the terminal's known fraud rate over the day ending %(delay)d days ago",
        "the terminal's known fraud rate over the %(num)d days ending %(delay)d days ago",
        days,
        delay=DELAY,
    )


def _amount_ratio(days: int) -> str:
    return gettext(
        "the amount against the customer's average over the previous %(num)d days", num=days
    )


def _large_count(days: int) -> str:
    return gettext(
        "the customer's number of transactions in the previous %(num)d days above %(factor)s "
        "times their average of the %(baseline)d days before",
        num=days,
        factor=format_decimal(features.LARGE_AMOUNT_FACTOR),
        baseline=features.LARGE_AMOUNT_BASELINE_DAYS,
    )


def _known_frauds(owner: str) -> Callable[[int], str]:
    def phrase(days: int) -> str:
        if owner == "TERMINAL":
            return gettext(
                "the number of the terminal's transactions of the last %(num)d days already "
                "known as frauds",
                num=days,
            )
        return gettext(
            "the number of the customer's transactions of the last %(num)d days already "
            "known as frauds",
            num=days,
        )

    return phrase


def _fixed(name: str) -> str | None:
    """The phrase of a feature without a window in its name."""
    phrases = {
        "TX_AMOUNT": lambda: gettext("the amount"),
        "TX_DURING_WEEKEND": lambda: gettext("a weekend transaction"),
        "TX_DURING_NIGHT": lambda: gettext("a night transaction (00:00-06:59)"),
        "TX_HOUR": lambda: gettext("the hour of day"),
        "TERMINAL_ID_FRAUD_RUN_LENGTH": lambda: gettext(
            "the number of known frauds in a row among the terminal's latest transactions "
            "before the last %(delay)d days",
            delay=DELAY,
        ),
        "TERMINAL_ID_FRAUD_RUN_AGE_DAYS": lambda: gettext(
            "the days since that run of the terminal's known frauds began (0: no such run)"
        ),
        "TERMINAL_ID_FIRST_FRAUD_AGE_DAYS": lambda: gettext(
            "the days since the terminal's first known fraud in the %(num)d days before the "
            "last %(delay)d (0: none)",
            num=features.TERMINAL_FRAUD_RUN_DAYS,
            delay=DELAY,
        ),
    }
    return phrases[name]() if name in phrases else None


WINDOWED = (
    (re.compile(r"CUSTOMER_ID_NB_TX_(\d+)DAY_WINDOW"), _customer_count),
    (re.compile(r"CUSTOMER_ID_AVG_AMOUNT_(\d+)DAY_WINDOW"), _customer_average),
    (re.compile(r"TERMINAL_ID_NB_TX_(\d+)DAY_WINDOW"), _terminal_count),
    (re.compile(r"TERMINAL_ID_RISK_(\d+)DAY_WINDOW"), _terminal_risk),
    (re.compile(r"CUSTOMER_ID_AMOUNT_RATIO_(\d+)DAY_WINDOW"), _amount_ratio),
    (re.compile(r"CUSTOMER_ID_NB_LARGE_TX_(\d+)DAY_WINDOW"), _large_count),
    (re.compile(r"TERMINAL_ID_KNOWN_FRAUDS_(\d+)DAY_WINDOW"), _known_frauds("TERMINAL")),
    (re.compile(r"CUSTOMER_ID_KNOWN_FRAUDS_(\d+)DAY_WINDOW"), _known_frauds("CUSTOMER")),
)


def feature_phrase(name: str) -> str:
    """What a model feature means, in the page's language (its name when it is unknown)."""
    phrase = _fixed(name)
    if phrase is not None:
        return phrase
    for pattern, word in WINDOWED:
        match = pattern.fullmatch(name)
        if match:
            return word(int(match.group(1)))
    return features.DESCRIPTIONS.get(name, name)


def reason_text(feature: str, value: float, raised: bool) -> str:
    """One reason of a score: the feature, its value, and which way it moved the risk."""
    shown = format_decimal(value, format="#,##0" if float(value).is_integer() else "#,##0.00")
    if raised:
        return gettext(
            "%(what)s (%(value)s) raised the risk", what=feature_phrase(feature), value=shown
        )
    return gettext(
        "%(what)s (%(value)s) lowered the risk", what=feature_phrase(feature), value=shown
    )
