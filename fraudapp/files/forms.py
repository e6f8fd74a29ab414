"""Forms of the Score a file pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SubmitField
from wtforms.validators import ValidationError

from ..services.transactions.file_jobs import allowed_name


def csv_name(form, field) -> None:
    """Only .csv and .csv.gz files."""
    if field.data and not allowed_name(field.data.filename or ""):
        raise ValidationError(_l("Choose a .csv or .csv.gz file."))


class UploadForm(FlaskForm):
    """A CSV to score, and whether its rows join the history."""

    file = FileField(
        _l("CSV file (.csv or .csv.gz)"),
        validators=[FileRequired(_l("Choose a .csv or .csv.gz file.")), csv_name],
    )
    store = BooleanField(_l("Store the rows in the history"))
    submit = SubmitField(_l("Score the file"))


class DeleteResultForm(FlaskForm):
    """Delete a job's scored file now."""

    delete = SubmitField(_l("Delete the scored file"))
