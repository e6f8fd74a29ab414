"""Score a file: analysts upload a CSV of transactions, follow its job and download the scores."""

from flask import Blueprint

bp = Blueprint("files", __name__)

from . import views  # noqa: E402,F401  (routes attach to bp)
