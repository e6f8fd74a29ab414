"""The JSON API for bank back ends: bearer tokens, field errors as 400, never a 500."""

from flask import Blueprint

from .limits import apply as apply_limits

bp = Blueprint("api", __name__)
apply_limits(bp)

from . import views  # noqa: E402,F401  (routes attach to bp)
from .reference import docs  # noqa: E402,F401  (the reference page's own blueprint)
