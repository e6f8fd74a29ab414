"""Form fields and validators that apply the input limits of services/transactions/limits.py to
WTForms, so that every out-of-range value typed into a page becomes a field error."""

from __future__ import annotations

from collections.abc import Callable

from wtforms import DecimalField
from wtforms.validators import StopValidation

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
