"""Request bodies of the JSON API, validated with pydantic; errors become {field: [messages]}."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ..services.transactions import limits
from ..services.transactions.limits import MAX_AMOUNT, MAX_ID, MAX_TRANSACTION_ID
from ..services.transactions.scoring import TransactionIn

# a customer or terminal id: opaque text, or a whole number taken as its decimal text
Id = Annotated[
    str,
    BeforeValidator(limits.check_id),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_ID}, {"type": "integer"}]}
    ),
]


class BadRequest(Exception):
    """A request body that fails validation; `errors` maps field paths to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


class TransactionBody(BaseModel):
    """One transaction to score."""

    tx_datetime: dt.datetime
    customer_id: Id
    terminal_id: Id
    amount: Annotated[float, Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)]
    consent: StrictBool
    transaction_id: (
        Annotated[
            str,
            Field(min_length=1, max_length=MAX_TRANSACTION_ID),
            AfterValidator(limits.check_text),
        ]
        | None
    ) = None

    @field_validator("tx_datetime")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return limits.check_time(value)

    def to_input(self) -> tuple[TransactionIn, bool]:
        """The service's input and the consent flag."""
        return TransactionIn(
            self.tx_datetime, self.customer_id, self.terminal_id, self.amount, self.transaction_id
        ), self.consent


class BatchBody(BaseModel):
    """Up to 1,000 transactions, scored in order."""

    transactions: Annotated[list[TransactionBody], Field(min_length=1, max_length=1000)]


class FeedbackBody(BaseModel):
    """Feedback on a prediction: whether it was correct, or the true label — one of the two."""

    correct: StrictBool | None = None
    label: Literal["fraud", "genuine"] | None = None

    @model_validator(mode="after")
    def _one_of(self):
        if (self.correct is None) == (self.label is None):
            raise ValueError("give either correct (true/false) or label (fraud/genuine)")
        return self


def parse(model: type[BaseModel], body) -> BaseModel:
    """The validated body, or BadRequest with field errors."""
    if not isinstance(body, dict):
        raise BadRequest({"body": ["must be a JSON object"]})
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "body"
            errors.setdefault(field, []).append(error["msg"])
        raise BadRequest(errors) from None
