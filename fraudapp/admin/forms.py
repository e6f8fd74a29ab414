"""Forms of the admin pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
    URLField,
    ValidationError,
)
from wtforms.validators import URL, DataRequired, Length, NumberRange, Optional

from ..feedback.forms import choices
from ..fields import NumberField, plain_text
from ..services.monitoring.figures import Period


class PeriodForm(FlaskForm):
    """Period, granularity and model version of the dashboard (query string)."""

    class Meta:
        csrf = False

    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])
    granularity = SelectField("By", choices=choices(["day", "week"]), default="day")
    model_version = SelectField("Model", choices=choices([""]), default="")
    target_precision = NumberField(
        "Precision target", places=2, default=0.8, validators=[Optional(), NumberRange(0.01, 1)]
    )

    def period(self, default: Period) -> Period:
        """The chosen period, falling back to the default's dates for missing or bad ones."""
        start = self.start.data if self.start.data and not self.start.errors else default.start
        end = self.end.data if self.end.data and not self.end.errors else default.end
        if start > end:
            start, end = end, start
        granularity = self.granularity.data if not self.granularity.errors else "day"
        version = self.model_version.data if not self.model_version.errors else None
        return Period(start, end, granularity or "day", version or None)


class ThresholdForm(FlaskForm):
    """Set the serving threshold."""

    threshold = NumberField(
        "Serving threshold",
        places=3,
        validators=[
            DataRequired(message="Enter a threshold."),
            NumberRange(0.001, 0.999, message="Use a value between 0.001 and 0.999."),
        ],
    )
    submit = SubmitField("Set threshold")


class AuditFilterForm(FlaskForm):
    """Filters of the audit log (query string)."""

    class Meta:
        csrf = False

    actor = StringField("Who", validators=[Optional(), plain_text])
    action = SelectField("Action", choices=choices([""]), default="")
    since = DateField("From", validators=[Optional()])
    until = DateField("To", validators=[Optional()])


class NodeForm(FlaskForm):
    """Add a prediction node to tell of new model versions."""

    url = URLField(
        "Node URL",
        validators=[
            DataRequired(message="Enter the node's base URL."),
            plain_text,
            URL(require_tld=False, message="Enter an http(s) URL such as http://10.0.0.5:8000."),
            Length(max=400),
        ],
    )
    secret = PasswordField(
        "Webhook secret",
        validators=[
            DataRequired(message="Enter the node's FRAUDAPP_WEBHOOK_SECRET."),
            plain_text,
            Length(min=16, max=200, message="Use 16 to 200 characters."),
        ],
    )
    submit = SubmitField("Add node")

    def validate_url(self, field) -> None:
        """Only http(s): the URL is posted to."""
        if not field.data.lower().startswith(("http://", "https://")):
            raise ValidationError("Enter an http(s) URL such as http://10.0.0.5:8000.")
