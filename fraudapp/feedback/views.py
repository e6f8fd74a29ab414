"""Receipt pages (public, by code) and the review queue (analysts and admins)."""

from __future__ import annotations

import secrets

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext
from flask_login import current_user

from ..auth.decorators import role_required
from ..auth.views import safe_next
from ..services.monitoring.figures import model_versions
from ..services.transactions import labels, review
from ..services.transactions.limits import page_number
from . import bp
from .forms import DeleteForm, FeedbackForm, LabelForm, QueueFilterForm, choices


def _feedback_actor() -> str:
    """Who answers: the logged-in user, else this browser session."""
    if current_user.is_authenticated:
        return current_user.username
    return "session:" + session.setdefault("sid", secrets.token_hex(8))


def _prediction_or_404(code: str):
    try:
        return labels.by_receipt(code)
    except labels.NotFound:
        abort(404, gettext("No stored data has this receipt code (it may have been deleted)."))


@bp.get("/my-data/<code>")
def my_data(code: str):
    """What is stored about one submission, with feedback and delete buttons."""
    prediction = _prediction_or_404(code)
    return render_template(
        "feedback/my_data.html",
        prediction=prediction,
        code=code,
        feedback_form=FeedbackForm(),
        delete_form=DeleteForm(),
    )


@bp.post("/my-data/<code>/feedback")
def give_feedback(code: str):
    """Correct / Wrong; the person may change their answer, every answer is kept."""
    prediction = _prediction_or_404(code)
    form = FeedbackForm()
    if form.validate_on_submit():
        labels.give_feedback(prediction.id, _feedback_actor(), correct=bool(form.correct.data))
        flash(gettext("Thank you — your answer was recorded."), "success")
    return redirect(url_for("feedback.my_data", code=code))


@bp.post("/my-data/<code>/delete")
def delete_my_data(code: str):
    """Delete everything stored about the submission."""
    _prediction_or_404(code)
    if DeleteForm().validate_on_submit():
        labels.delete_by_receipt(code)
        flash(gettext("Your data was deleted. Only anonymous counts remain."), "success")
        return redirect(url_for("predict.index"))
    return redirect(url_for("feedback.my_data", code=code))


@bp.get("/review")
@role_required("analyst")
def review_queue():
    """Stored predictions, most suspicious first, with filters and one-click labels."""
    form = QueueFilterForm(request.args)
    form.model_version.choices = choices(["", *model_versions()])
    form.validate()
    page = review.queue(form.filters(), request.args.get("page", 1, type=page_number))
    return render_template(
        "feedback/review.html",
        form=form,
        page=page,
        reasons=review.explanations(page.items),
        label_form=LabelForm(),
    )


@bp.post("/review/label")
@role_required("analyst")
def label():
    """Label one or several predictions as fraud or genuine."""
    form = LabelForm()
    if form.validate_on_submit():
        ids, fraud = form.selection()
        count = labels.label_by_analyst(ids, fraud, current_user.username)
        flash(_labelled(count, fraud), "success")
    else:
        flash(" ".join(str(e) for errors in form.errors.values() for e in errors), "error")
    return redirect(safe_next(form.next.data))


def _labelled(count: int, fraud: bool) -> str:
    """The message after labelling, in the page's language."""
    if fraud:
        return gettext("Labelled %(num)d transaction(s) as fraud.", num=count)
    return gettext("Labelled %(num)d transaction(s) as genuine.", num=count)


@bp.get("/review/coverage")
@role_required("analyst")
def coverage():
    """Label coverage per day and model version."""
    return render_template("feedback/coverage.html", rows=review.coverage())
