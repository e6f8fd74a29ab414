"""The login form."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError

from ..services.accounts import has_control_characters


def no_control_characters(_form, field) -> None:
    """Refuse NUL, CR, LF and other control characters: no user name or password holds one."""
    if field.data and has_control_characters(field.data):
        raise ValidationError(_l("Control characters are not allowed."))


class LoginForm(FlaskForm):
    """User name and password."""

    username = StringField(
        _l("User name"), validators=[DataRequired(), Length(max=80), no_control_characters]
    )
    password = PasswordField(
        _l("Password"), validators=[DataRequired(), Length(max=200), no_control_characters]
    )
    submit = SubmitField(_l("Log in"))
