"""Forms of the admin pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
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

    start = DateField(_l("From"), validators=[Optional()])
    end = DateField(_l("To"), validators=[Optional()])
    granularity = SelectField(_l("By"), choices=choices(["day", "week"]), default="day")
    model_version = SelectField(_l("Model"), choices=choices([""]), default="")
    target_precision = NumberField(
        _l("Precision target"), places=2, default=0.8, validators=[Optional(), NumberRange(0.01, 1)]
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
        _l("Serving threshold"),
        places=3,
        validators=[
            DataRequired(message=_l("Enter a threshold.")),
            NumberRange(0.001, 0.999, message=_l("Use a value between 0.001 and 0.999.")),
        ],
    )
    submit = SubmitField(_l("Set threshold"))


class AuditFilterForm(FlaskForm):
    """Filters of the audit log (query string)."""

    class Meta:
        csrf = False

    actor = StringField(_l("Who"), validators=[Optional(), plain_text])
    action = SelectField(_l("Action"), choices=choices([""]), default="")
    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("To"), validators=[Optional()])


class NodeForm(FlaskForm):
    """Add a prediction node to tell of new model versions."""

    url = URLField(
        _l("Node URL"),
        validators=[
            DataRequired(message=_l("Enter the node's base URL.")),
            plain_text,
            URL(
                require_tld=False, message=_l("Enter an http(s) URL such as http://10.0.0.5:8000.")
            ),
            Length(max=400),
        ],
    )
    secret = PasswordField(
        _l("Webhook secret"),
        validators=[
            DataRequired(message=_l("Enter the node's FRAUDAPP_WEBHOOK_SECRET.")),
            plain_text,
            Length(min=16, max=200, message=_l("Use 16 to 200 characters.")),
        ],
    )
    submit = SubmitField(_l("Add node"))

    def validate_url(self, field) -> None:
        """Only http(s): the URL is posted to."""
        if not field.data.lower().startswith(("http://", "https://")):
            raise ValidationError(_l("Enter an http(s) URL such as http://10.0.0.5:8000."))
