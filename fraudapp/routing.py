"""URL converters: a row id in a path is a whole number a database row can have, else 404."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter, ValidationError

from .services.transactions.limits import MAX_ROW_ID


class IdConverter(IntegerConverter):
    """`<id:name>`: digits up to MAX_ROW_ID (2**63 - 1); anything larger matches no route."""

    def __init__(self, url_map, **kwargs) -> None:
        super().__init__(url_map, max=MAX_ROW_ID, **kwargs)

    def to_python(self, value: str) -> int:
        """The id; no match for more digits than the largest id has (int() refuses thousands)."""
        if len(value) > len(str(MAX_ROW_ID)):
            raise ValidationError()
        return super().to_python(value)


def register_converters(app: Flask) -> None:
    """Make `<id:...>` available to every blueprint's routes."""
    app.url_map.converters["id"] = IdConverter
