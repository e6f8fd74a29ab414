"""The public prediction form and its result page."""

from flask import Blueprint

bp = Blueprint("predict", __name__)

from . import views  # noqa: E402,F401  (routes attach to bp)
