"""Form → score → result page (post/redirect/get; the result travels in the session)."""

from __future__ import annotations

from flask import redirect, render_template, session, url_for
from flask_babel import gettext

from ..feedback.forms import FeedbackForm
from ..services import serving
from ..services.transactions import scoring
from . import bp
from .forms import TransactionForm


@bp.route("/", methods=["GET", "POST"])
def index():
    """The transaction form; a valid submission is scored and redirected to its result."""
    form = TransactionForm()
    if form.validate_on_submit():
        try:
            result = scoring.score(form.to_input(), form.consent.data, want_explanation=True)
        except serving.ModelUnavailable as exc:
            message = gettext(
                "No model can score transactions just now; please try again later (%(reason)s).",
                reason=exc,
            )
            return render_template("predict/index.html", form=form, unavailable=message), 503
        session["result"] = {
            "score": result.score,
            "is_fraud": result.is_fraud,
            "threshold": result.threshold,
            "model_version": result.model_version,
            "receipt": result.receipt,
            "transaction": form.summary(),
            "reasons": [
                (r["feature"], r["value"], r["contribution"] > 0) for r in result.explanation
            ],
        }
        return redirect(url_for("predict.result"))
    return render_template("predict/index.html", form=form), 400 if form.errors else 200


@bp.get("/result")
def result():
    """The last result of this browser session."""
    data = session.get("result")
    if data is None:
        return redirect(url_for("predict.index"))
    return render_template("predict/result.html", result=data, feedback_form=FeedbackForm())
