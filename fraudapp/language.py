"""The language switch of the navigation bar: the choice is kept in a cookie for a year."""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for

from .auth.views import safe_next
from .i18n import COOKIE, COOKIE_SECONDS, LANGUAGES

bp = Blueprint("language", __name__)


@bp.post("/language")
def choose():
    """Remember the chosen language and go back to the page the switch was pressed on."""
    target = request.form.get("next")
    response = redirect(safe_next(target) if target else url_for("predict.index"))
    language = request.form.get("language")
    if language in LANGUAGES:
        response.set_cookie(
            COOKIE,
            language,
            max_age=COOKIE_SECONDS,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure,
        )
    return response
