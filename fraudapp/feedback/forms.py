"""Forms of the feedback pages."""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    HiddenField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.validators import NumberRange, Optional, ValidationError

from ..fields import NumberField
from ..services.transactions.limits import row_id
from ..services.transactions.review import STATUSES, Filters


class FeedbackForm(FlaskForm):
    """Was the prediction right? Two buttons."""

    correct = SubmitField(_l("Correct"))
    wrong = SubmitField(_l("Wrong"))


class DeleteForm(FlaskForm):
    """Delete my data."""

    delete = SubmitField(_l("Delete my data"))


# The words of the filters' fixed values; other values (model versions) read as themselves.
WORDS = {
    "": _l("Any"),
    "unlabelled": _l("Unlabelled"),
    "labelled": _l("Labelled"),
    "all": _l("All"),
    "feedback": _l("Feedback"),
    "analyst": _l("Analyst"),
    "fraud": _l("Fraud"),
    "genuine": _l("Genuine"),
    "day": _l("Day"),
    "week": _l("Week"),
}


def choices(values) -> list[SelectChoice]:
    """Select options labelled in the page's language ("" reads "Any")."""
    return [SelectChoice(v, WORDS.get(v, v)) for v in values]


class QueueFilterForm(FlaskForm):
    """Filters of the review queue, read from the query string."""

    class Meta:
        csrf = False

    status = SelectField(_l("Label"), choices=choices(STATUSES), default="unlabelled")
    decision = SelectField(_l("Decision"), choices=choices(["", "fraud", "genuine"]), default="")
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])
    score_min = NumberField(_l("Score ≥"), places=3, validators=[Optional(), NumberRange(0, 1)])
    score_max = NumberField(_l("Score ≤"), places=3, validators=[Optional(), NumberRange(0, 1)])
    model_version = SelectField(_l("Model"), choices=choices([""]), default="")

    def filters(self) -> Filters:
        """The filters, ignoring fields that did not validate."""

        def ok(field):
            return field.data if not field.errors else None

        return Filters(
            status=self.status.data if not self.status.errors else "unlabelled",
            decision=ok(self.decision) or None,
            date_from=ok(self.date_from),
            date_to=ok(self.date_to),
            score_min=float(self.score_min.data) if ok(self.score_min) is not None else None,
            score_max=float(self.score_max.data) if ok(self.score_max) is not None else None,
            model_version=ok(self.model_version) or None,
        )


class LabelForm(FlaskForm):
    """Label the ticked predictions (bulk buttons) or one row (its own buttons)."""

    ids = SelectMultipleField(coerce=row_id, validate_choice=False)
    row = StringField()  # "<id>:fraud" or "<id>:genuine", from a row's own button
    next = HiddenField()
    fraud = SubmitField(_l("Fraud"))
    genuine = SubmitField(_l("Genuine"))

    def validate_row(self, field) -> None:
        """A row button names one prediction and a label."""
        if field.data and not re.fullmatch(r"\d{1,18}:(fraud|genuine)", field.data):
            raise ValidationError(_l("Unknown label."))

    def validate_ids(self, field) -> None:
        """Something must be selected."""
        if not field.data and not self.row.data:
            raise ValidationError(_l("Select at least one transaction."))

    def selection(self) -> tuple[list[int], bool]:
        """The predictions to label, and whether as fraud."""
        if self.row.data:
            ident, _, label = self.row.data.partition(":")
            return [int(ident)], label == "fraud"
        return self.ids.data, bool(self.fraud.data)
