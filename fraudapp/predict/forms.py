"""The transaction form."""

from __future__ import annotations

import datetime as dt

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateTimeLocalField, StringField, SubmitField
from wtforms.validators import InputRequired, StopValidation

from ..fields import LocalNumberField, limit
from ..services.transactions import limits
from ..services.transactions.scoring import TransactionIn


def parsed(form, field) -> None:
    """Stop at the field's own parse error, so it is the only message shown."""
    if field.process_errors:
        raise StopValidation()


def cents(form, field) -> None:
    """At most two decimals."""
    if field.data is not None and field.data != round(field.data, 2):
        raise StopValidation(gettext("Use at most two decimals."))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, second=0, microsecond=0)


def valid_id(form, field) -> None:
    """The id as stored (`limits.check_id`: surrounding whitespace stripped), or its error."""
    try:
        field.data = limits.check_id(field.data)
    except ValueError as exc:
        raise StopValidation(str(exc)) from None


def id_field(label: str, missing: str) -> StringField:
    """A required customer or terminal id: opaque text (card token, merchant id, a number);
    `missing` is the message when it is left empty."""
    return StringField(
        label,
        validators=[InputRequired(message=missing), valid_id],
    )


class TransactionForm(FlaskForm):
    """Date/time (UTC), customer, terminal, amount and consent to store the transaction."""

    tx_datetime = DateTimeLocalField(
        _l("Date and time (UTC)"),
        default=_now,
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        validators=[
            InputRequired(message=_l("Enter a date and time.")),
            parsed,
            limit(limits.check_time),
        ],
    )
    customer_id = id_field(_l("Customer id"), _l("Enter the customer id."))
    terminal_id = id_field(_l("Terminal id"), _l("Enter the terminal id."))
    amount = LocalNumberField(
        _l("Amount"),
        places=2,
        validators=[
            InputRequired(message=_l("Enter the amount.")),
            parsed,
            limit(limits.check_amount),
            cents,
        ],
    )
    consent = BooleanField(_l("Store this transaction to improve the model"), default=False)
    submit = SubmitField(_l("Score transaction"))

    def summary(self) -> dict:
        """What was scored, for the result page (which words and formats it)."""
        return {
            "tx_datetime": self.tx_datetime.data.isoformat(sep=" "),
            "customer_id": self.customer_id.data,
            "terminal_id": self.terminal_id.data,
            "amount": float(self.amount.data),
        }

    def to_input(self) -> TransactionIn:
        """The validated transaction."""
        return TransactionIn(
            self.tx_datetime.data,
            self.customer_id.data,
            self.terminal_id.data,
            float(self.amount.data),
        )
