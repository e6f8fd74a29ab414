"""Feedback: the submitter's receipt page (feedback, see and delete their data) and the analysts'
review queue."""

from flask import Blueprint

bp = Blueprint("feedback", __name__)

from . import views  # noqa: E402,F401  (routes attach to bp)
