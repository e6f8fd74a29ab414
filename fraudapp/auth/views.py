"""Login and logout; `next` is followed only when it stays on this site."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user, login_user, logout_user

from ..extensions import login_manager
from ..models import User
from ..services import accounts
from . import bp
from .forms import LoginForm


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The logged-in user of a session, while the session is still current."""
    return accounts.load_session_user(session_id)


def safe_next(target: str | None) -> str:
    """`target` when it is a clean path on this site, else the review queue."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and not urlsplit(target).netloc
        and "\\" not in target
        and all(c.isprintable() and not c.isspace() for c in target)
    ):
        return target
    return url_for("feedback.review_queue")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in with a user name and password."""
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(
                form.username.data, form.password.data, request.remote_addr
            )
        except accounts.LoginThrottled as exc:
            flash(
                gettext(
                    "Login refused: too many failed logins; try again in %(num)d seconds.",
                    num=exc.retry_after,
                ),
                "error",
            )
            headers = {"Retry-After": str(exc.retry_after)}
            return render_template("auth/login.html", form=form), 429, headers
        if user is not None:
            login_user(user)
            return redirect(safe_next(request.args.get("next")))
        flash(gettext("Wrong user name or password."), "error")
    return render_template("auth/login.html", form=form), 400 if form.errors else 200


@bp.post("/logout")
def logout():
    """Log out (POST, so a link elsewhere cannot log you out)."""
    if current_user.is_authenticated:
        accounts.logout(current_user._get_current_object())
    logout_user()
    flash(gettext("You are logged out."), "info")
    return redirect(url_for("predict.index"))
