"""Form fields and validators that apply the input limits of services/transactions/limits.py to
WTForms, so that every out-of-range value typed into a page becomes a field error."""

from __future__ import annotations

from collections.abc import Callable

from babel.numbers import parse_decimal
from flask_babel import format_decimal, get_locale
from wtforms import DecimalField
from wtforms.validators import StopValidation
from wtforms.widgets import TextInput

from .services.transactions import limits


def limit(check: Callable) -> Callable:
    """A validator from one of the limits' checks: its ValueError becomes the field's only error."""

    def validator(form, field) -> None:
        if field.data is None or field.data == "":
            return
        try:
            check(field.data)
        except ValueError as exc:
            raise StopValidation(str(exc)) from None

    return validator


plain_text = limit(limits.check_text)


class NumberField(DecimalField):
    """A decimal field that refuses what arithmetic cannot use (NaN, infinity, 1e309, 29 digits)
    as a parse error, before any other validator sees it."""

    def process_formdata(self, valuelist) -> None:
        """Parse as a decimal, then check it is a usable number."""
        super().process_formdata(valuelist)
        if valuelist and self.data is not None:
            try:
                limits.check_number(self.data)
            except ValueError as exc:
                self.data = None
                raise ValueError(self.gettext(str(exc))) from None


class LocalNumberField(NumberField):
    """A decimal written the way the page's language writes numbers: 1,234.56 or 12.5 in English,
    1.234,56 or 12,5 in Portuguese. Anything else (12.50 in Portuguese, where the dot groups
    thousands) is a parse error, never a silently different number."""

    widget = TextInput()

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("render_kw", {"inputmode": "decimal", "autocomplete": "off"})
        super().__init__(*args, **kwargs)

    def process_formdata(self, valuelist) -> None:
        """Parse with the page's language's separators (strictly), then check it is usable."""
        if not valuelist:
            return
        try:
            self.data = parse_decimal(valuelist[0].strip(), locale=get_locale(), strict=True)
        except (ValueError, ArithmeticError):
            self.data = None
            raise ValueError(self.gettext(limits.NUMBER_MESSAGE)) from None
        self._check_usable()

    def _check_usable(self) -> None:
        try:
            limits.check_number(self.data)
        except ValueError as exc:
            self.data = None
            raise ValueError(self.gettext(str(exc))) from None

    def _value(self) -> str:
        """The typed text again, or the number in the page's language."""
        if self.raw_data:
            return self.raw_data[0]
        if self.data is None:
            return ""
        return format_decimal(self.data, format="0." + "0" * (self.places or 2))
