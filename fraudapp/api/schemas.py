"""Request bodies of the JSON API, validated with pydantic; errors become {field: [messages]}."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
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
        {
            "anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_ID}, {"type": "integer"}],
            "description": f"Opaque id (card token, merchant id) of 1 to {MAX_ID} characters; "
            "a whole number is the same id as its decimal text",
            "examples": ["cus_8f2aQ", "MID-00042", 42],
        }
    ),
]


class BadRequest(Exception):
    """A request body that fails validation; `errors` maps field paths to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


NUMBER = re.compile(r"\s*[+-]?[\d.]+([eE][+-]?\d+)?\s*")


def _iso_text(value):
    """A time is ISO 8601 text: not a JSON number, nor digits in a string (pydantic would read
    either as Unix seconds)."""
    if not isinstance(value, str) or NUMBER.fullmatch(value):
        raise ValueError("Input should be a date and time as ISO 8601 text")
    return value


class TransactionBody(BaseModel):
    """One transaction to score."""

    tx_datetime: Annotated[dt.datetime, BeforeValidator(_iso_text)]
    customer_id: Id
    terminal_id: Id
    amount: Annotated[float, Field(strict=True, ge=0, le=MAX_AMOUNT, allow_inf_nan=False)]
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

    model_config = ConfigDict(  # the rule of `_one_of`, for the OpenAPI document
        json_schema_extra={
            "oneOf": [
                {"required": ["correct"], "properties": {"correct": {"type": "boolean"}}},
                {"required": ["label"], "properties": {"label": {"enum": ["fraud", "genuine"]}}},
            ]
        }
    )

    correct: StrictBool | None = None
    label: Literal["fraud", "genuine"] | None = None

    @model_validator(mode="after")
    def _one_of(self):
        if (self.correct is None) == (self.label is None):
            raise ValueError("give either correct (true/false) or label (fraud/genuine)")
        return self


FLAG_TRUE = ("true", "1", "yes")
FLAG_FALSE = ("false", "0", "no")


def parse_flag(name: str, values: list[str]) -> bool:
    """A yes/no query parameter (absent: no), or BadRequest for another value or a repeated
    one. Case does not matter: `?explain=True` counts."""
    if not values:
        return False
    value = values[0].lower()
    if len(values) > 1 or value not in FLAG_TRUE + FLAG_FALSE:
        raise BadRequest({name: ["use true or false, once"]})
    return value in FLAG_TRUE


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
