"""The outbox: every e-mail, SMS and webhook a workflow step wrote, with its
delivery status. Without SMTP_HOST / SMS_GATEWAY_URL messages are kept here
("recorded") rather than sent, so nothing is silently dropped."""

from __future__ import annotations

from flask import Blueprint, current_app, request
from sqlalchemy import select

from app.auth import login_required_page
from app.extensions import db
from app.models import OutboxMessage, TrackingEvent
from app.models.delivery import CHANNELS, OUTBOX_STATUSES
from app.web.pages import get_or_404, page_or_block, paginate

bp = Blueprint("outbox", __name__, url_prefix="/outbox")


@bp.get("", strict_slashes=False)
@login_required_page
def list_outbox():
    status = request.args.get("status") or ""
    channel = request.args.get("channel") or ""
    stmt = select(OutboxMessage)
    if status in OUTBOX_STATUSES:
        stmt = stmt.where(OutboxMessage.status == status)
    else:
        status = ""
    if channel in CHANNELS:
        stmt = stmt.where(OutboxMessage.channel == channel)
    else:
        channel = ""
    page = paginate(stmt.order_by(OutboxMessage.id.desc()), 30)
    return page_or_block(
        "outbox/list.html",
        "results",
        page=page,
        status=status,
        channel=channel,
        statuses=OUTBOX_STATUSES,
        channels=CHANNELS,
        smtp_configured=bool(current_app.config.get("SMTP_HOST")),
        sms_configured=bool(current_app.config.get("SMS_GATEWAY_URL")),
    )


@bp.get("/<int:message_id>")
@login_required_page
def show(message_id: int):
    message = get_or_404(OutboxMessage, message_id)
    events = db.session.scalars(
        select(TrackingEvent)
        .where(TrackingEvent.outbox_id == message.id)
        .order_by(TrackingEvent.created_at)
    ).all()
    return page_or_block("outbox/show.html", "content", m=message, events=events)
