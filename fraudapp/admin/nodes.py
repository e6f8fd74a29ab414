"""Admin page of the prediction nodes: what each serves, the nodes told of new versions, and the
webhook deliveries with their attempts."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext
from flask_login import current_user

from ..auth.decorators import role_required
from ..services.distribution import agent, outbox, releases
from . import bp
from .forms import NodeForm


@bp.get("/nodes")
@role_required("admin")
def nodes():
    """Every node's version and heartbeat, the endpoints, recent deliveries."""
    return _page(NodeForm())


def _page(form: NodeForm, status: int = 200):
    return (
        render_template(
            "admin/nodes.html",
            form=form,
            current=releases.current(),
            challenger=releases.challenger(),
            nodes=agent.nodes(),
            endpoints=outbox.endpoints(),
            deliveries=outbox.recent(),
            secret_set=bool(current_app.config["WEBHOOK_SECRET"]),
        ),
        status,
    )


@bp.post("/nodes")
@role_required("admin")
def add_node():
    """Tell one more node of new versions."""
    form = NodeForm()
    if not form.validate_on_submit():
        return _page(form, 400)
    try:
        url = outbox.add_endpoint(form.url.data, form.secret.data, current_user.username).url
    except outbox.EndpointError as exc:
        form.url.errors.append(str(exc))
        return _page(form, 400)
    flash(gettext("%(url)s will be told of every new model version.", url=url), "success")
    return redirect(url_for("admin.nodes"))


@bp.post("/nodes/<id:endpoint_id>/remove")
@role_required("admin")
def remove_node(endpoint_id: int):
    """Stop telling a node of new versions."""
    try:
        url = outbox.remove_endpoint(endpoint_id, current_user.username)
    except outbox.EndpointError as exc:
        flash(gettext("Cannot remove: %(reason)s.", reason=exc), "error")
    else:
        flash(gettext("%(url)s is no longer told of new versions.", url=url), "success")
    return redirect(url_for("admin.nodes"))
