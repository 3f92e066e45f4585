"""The outbox: every e-mail, SMS and webhook a workflow step wrote, with its
delivery status. Without SMTP_HOST / SMS_GATEWAY_URL messages are kept here
("recorded") rather than sent, so nothing is silently dropped."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select

from app.auth import login_required_page
from app.extensions import db
from app.models import OutboxMessage, TrackingEvent
from app.models.delivery import CHANNELS, OUTBOX_STATUSES
from app.web.pages import get_or_404, page_or_block, paginate

bp = Blueprint("outbox", __name__, url_prefix="/outbox")

# The e-mail's own HTML, shown in a sandboxed frame of the message page as
# a mail client shows it: its images and styles load, but no script, form
# or plugin runs, and only this site may frame it. The outbox keeps the
# body as rendered, before send-time tracking (pixel, links) is added.
EMAIL_FRAME_CSP = (
    "default-src 'none'; img-src * data:; style-src * 'unsafe-inline'; font-src * data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
)


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
    return page_or_block(
        "outbox/show.html", "content", m=message, events=events, payload=_masked(message.payload)
    )


def _masked(payload: dict | None) -> dict | None:
    """The payload as shown: webhook header values (tokens, keys) are
    hidden, their names kept, as in a workflow export."""
    if not payload or not isinstance(payload.get("headers"), dict):
        return payload
    return {**payload, "headers": dict.fromkeys(payload["headers"], "••••")}


@bp.get("/<int:message_id>/rendered")
@login_required_page
def rendered(message_id: int):
    """The HTML body alone, for the message page's sandboxed iframe."""
    message = get_or_404(OutboxMessage, message_id)
    return Response(
        message.body_html or "",
        mimetype="text/html",
        headers={
            "Content-Security-Policy": EMAIL_FRAME_CSP,
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "no-store",
        },
    )
