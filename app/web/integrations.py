"""Settings -> Integrations: the firm's REST hook subscriptions, their
recent deliveries with the receivers' answers, and removing one
(docs/INTEGRATIONS.md). Admins and marketers; portal users get 403."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for

from app.auth import login_required_page
from app.automation.hooks import subscriptions
from app.extensions import db
from app.models import HookSubscription
from app.web.pages import get_or_404

bp = Blueprint("integrations", __name__, url_prefix="/settings/integrations")


@bp.get("", strict_slashes=False)
@login_required_page
def index():
    return render_template(
        "crm/integrations.html",
        subscriptions=subscriptions.attach_last_delivery(subscriptions.active()),
        deliveries=subscriptions.recent_deliveries(),
    )


@bp.post("/<int:subscription_id>/delete")
@login_required_page
def delete(subscription_id: int):
    subscription = get_or_404(HookSubscription, subscription_id)
    subscriptions.unsubscribe(subscription)
    db.session.commit()
    flash("The subscription was removed; its receiver gets nothing more.", "success")
    return redirect(url_for("integrations.index"), code=303)
