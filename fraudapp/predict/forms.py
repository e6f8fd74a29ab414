"""The transaction form."""

from __future__ import annotations

import datetime as dt

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateTimeLocalField, DecimalField, IntegerField, SubmitField
from wtforms.validators import DataRequired, InputRequired, NumberRange

from ..services.scoring import MAX_AMOUNT, MAX_ID, TransactionIn


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, second=0, microsecond=0)


class TransactionForm(FlaskForm):
    """Date/time (UTC), customer, terminal, amount and consent to store the transaction."""

    tx_datetime = DateTimeLocalField(
        "Date and time (UTC)",
        default=_now,
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        validators=[DataRequired(message="Enter a date and time.")],
    )
    customer_id = IntegerField(
        "Customer id",
        validators=[
            InputRequired(message="Enter the customer id."),
            NumberRange(0, MAX_ID, message=f"Use a whole number from 0 to {MAX_ID}."),
        ],
    )
    terminal_id = IntegerField(
        "Terminal id",
        validators=[
            InputRequired(message="Enter the terminal id."),
            NumberRange(0, MAX_ID, message=f"Use a whole number from 0 to {MAX_ID}."),
        ],
    )
    amount = DecimalField(
        "Amount",
        places=2,
        validators=[
            InputRequired(message="Enter the amount."),
            NumberRange(0, MAX_AMOUNT, message=f"Use an amount from 0 to {MAX_AMOUNT:,.0f}."),
        ],
    )
    consent = BooleanField("Store this transaction to improve the model", default=False)
    submit = SubmitField("Score transaction")

    def to_input(self) -> TransactionIn:
        """The validated transaction."""
        return TransactionIn(
            self.tx_datetime.data,
            self.customer_id.data,
            self.terminal_id.data,
            float(self.amount.data),
        )
