"""What recipients do with a sent e-mail: opens, clicks, unsubscribes, and
the provider's callbacks (bounces, replies...).

Each is recorded as a ``TrackingEvent`` and fed to the trigger bus
(``email_opened``, ``email_clicked``, ``email_unsubscribed``,
``email_bounced``, ``email_replied``) with ``data`` = ``workflow_id``,
``node``, ``message_id``, ``email_id`` (the outbox id) and ``url`` for
clicks. Every open and click is recorded; the bus sees one event per
message (open, unsubscribe) or per message and link (click), because the
event id is derived from them and the bus drops a repeated id
(:func:`bus_event_id`). Opens and clicks from our own endpoints are taken
as hits and recorded in batches by
:mod:`app.automation.delivery.tracking_hits`, with the helpers here.

Public tokens are checked under the firm they name: a token whose firm does
not own the message finds nothing (404), like a tampered one.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from sqlalchemy import Row, select
from sqlalchemy.exc import IntegrityError

from app.automation.delivery import pause, suppressions
from app.automation.delivery.bounces import Bounce, classify_provider
from app.automation.delivery.tracking import BadToken, read_token
from app.automation.hooks import facts as hook_facts
from app.automation.triggers.bus import emit
from app.clock import now
from app.extensions import db
from app.models import Contact, EventKey, OutboxMessage, TrackingEvent
from app.queue import kick_hooks
from app.tenancy import firm_context

log = logging.getLogger(__name__)

# Provider callback types (docs/CONTRACT.md) -> tracking kind and bus event.
PROVIDER_TYPES = {
    "email_bounced": "bounce",
    "email_replied": "reply",
    "email_opened": "open",
    "email_clicked": "click",
    "email_unsubscribed": "unsubscribe",
    "email_complained": "complaint",
}
EVENT_OF_KIND = {kind: event for event, kind in PROVIDER_TYPES.items()}
MAX_TEXT = 1000


@dataclass(frozen=True)
class Tracked:
    """The message a public token points to (plain values, no ORM)."""

    firm_id: int
    outbox_id: int
    contact_id: int | None
    url: str = ""


class UnknownMessage(LookupError):
    """The callback names no message or address we sent to."""


def _message(kind: str, token: str) -> tuple[Tracked, OutboxMessage] | None:
    """The e-mail a public token names; None for a bad token or a message
    the token's firm does not own."""
    try:
        parsed = read_token(kind, token)
    except BadToken:
        return None
    message = db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.id == parsed.outbox_id,
            OutboxMessage.firm_id == parsed.firm_id,
            OutboxMessage.channel == "email",
        )
    ).first()
    if message is None:
        return None
    return Tracked(parsed.firm_id, message.id, message.contact_id, parsed.url), message


def _event(
    row: OutboxMessage | Row,
    kind: str,
    url: str = "",
    user_agent: str = "",
    event_id=None,
    detail: dict | None = None,
    machine: bool = False,
):
    return TrackingEvent(
        detail=detail or {},
        machine=machine,
        outbox_id=row.id,
        contact_id=row.contact_id,
        execution_id=row.execution_id,
        workflow_id=row.workflow_id,
        node_id=row.node_id,
        kind=kind,
        url=url[: MAX_TEXT * 4],
        user_agent=(user_agent or "")[:MAX_TEXT],
        event_id=event_id,
    )


def _emit(
    row: OutboxMessage | Row, kind: str, event_id: str, url: str = "", extra: dict | None = None
) -> None:
    """Tell the trigger bus; a bus failure must not lose the recorded event
    or break the recipient's redirect, so it is logged, not raised."""
    if row.contact_id is None:
        return
    data = {**bus_data(row, url), **(extra or {})}
    try:
        emit(
            row.firm_id,
            EVENT_OF_KIND[kind],
            row.contact_id,
            data=data,
            event_id=event_id,
            source="email",
        )
    except Exception:
        log.exception("emitting %s for outbox %s failed", kind, row.id)
        db.session.rollback()


def bus_data(row: OutboxMessage | Row, url: str = "") -> dict:
    """The ``data`` of an ``email_*`` bus event about the message ``row``."""
    data = {
        "workflow_id": row.workflow_id,
        "node": row.node_id,
        "message_id": row.message_id,
        "email_id": row.id,
    }
    if url:
        data["url"] = url
    return data


def bus_event_id(row: OutboxMessage | Row, kind: str, url: str = "", fallback: str = "") -> str:
    """Opens and unsubscribes count once per message, clicks once per message
    and link -- whether they came from our endpoints or a provider."""
    if kind == "click":
        return f"email_clicked:{row.id}:{hashlib.sha256(url.encode()).hexdigest()[:16]}"
    if kind in ("open", "unsubscribe"):
        return f"{EVENT_OF_KIND[kind]}:{row.id}"
    return fallback


def _firm_of(kind: str, token: str) -> int | None:
    try:
        return read_token(kind, token).firm_id
    except BadToken:
        return None


def unsubscribe_details(token: str) -> dict | None:
    """What the confirmation page shows: a masked address, and whether the
    contact is already unsubscribed. None for a bad token."""
    firm_id = _firm_of("unsubscribe", token)
    if firm_id is None:
        return None
    with firm_context(firm_id):
        found = _message("unsubscribe", token)
        if found is None:
            return None
        _, row = found
        contact = db.session.get(Contact, row.contact_id) if row.contact_id else None
        return {
            "email": mask_email(row.to_address),
            "already": bool(contact and contact.unsubscribed),
        }


def unsubscribe(token: str, user_agent: str = "") -> bool:
    """Unsubscribe the message's contact (the page's button or RFC 8058
    one-click POST). Idempotent; False for a bad token."""
    firm_id = _firm_of("unsubscribe", token)
    if firm_id is None:
        return False
    with firm_context(firm_id):
        found = _message("unsubscribe", token)
        if found is None:
            return False
        _, row = found
        _unsubscribe_contact(row, user_agent)
    return True


def _unsubscribe_contact(row: OutboxMessage, user_agent: str = "", record: bool = True) -> None:
    contact = db.session.get(Contact, row.contact_id) if row.contact_id else None
    unsubscribed = contact is not None and not contact.unsubscribed
    if unsubscribed:
        contact.unsubscribed = True
        contact.unsubscribed_at = now()
        if record:
            db.session.add(_event(row, "unsubscribe", user_agent=user_agent))
        hook_facts.unsubscribed(row, "unsubscribe_link")
    db.session.commit()
    if unsubscribed:
        kick_hooks()
    _emit(row, "unsubscribe", bus_event_id(row, "unsubscribe"))


def mask_email(address: str) -> str:
    local, at, domain = (address or "").partition("@")
    if not at:
        return ""
    return f"{local[:1]}{'*' * max(len(local) - 1, 1)}@{domain}"


# --- provider callbacks --------------------------------------------------------


def _find_outbox(message_id: str, email: str) -> OutboxMessage | None:
    """The e-mail a provider event is about: by Message-ID, else the latest
    e-mail sent to that address. Provider callbacks are system-wide (one
    operator secret), so this looks across firms on purpose."""
    candidates = []
    if message_id:
        bare = message_id.strip().strip("<>")
        candidates = [f"<{bare}>", bare]
        row = db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.message_id.in_(candidates), OutboxMessage.channel == "email")
            .execution_options(all_firms=True)
        ).first()
        if row is not None:
            return row
    if email:
        return db.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.to_address == email.strip(),
                OutboxMessage.channel == "email",
                OutboxMessage.status == "sent",
            )
            .order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc())
            .limit(1)
            .execution_options(all_firms=True)
        ).first()
    return None


def handle_provider_event(payload: dict, event_id: str) -> dict:
    """Record one verified provider callback. A replayed ``event_id`` is a
    no-op. Raises ``ValueError`` for an unknown type and
    :class:`UnknownMessage` when nothing matches."""
    kind = PROVIDER_TYPES.get(str(payload.get("type") or ""))
    if kind is None:
        raise ValueError(f"type must be one of: {', '.join(PROVIDER_TYPES)}")
    found = _find_outbox(str(payload.get("message_id") or ""), str(payload.get("email") or ""))
    db.session.commit()
    if found is None:
        raise UnknownMessage("no sent e-mail matches message_id or email")
    firm_id, outbox_id = found.firm_id, found.id
    url = str(payload.get("url") or "") if kind == "click" else ""
    bounce = classify_provider(payload) if kind == "bounce" else None
    detail = bounce.detail() if bounce else {}
    with firm_context(firm_id):
        row = db.session.get(OutboxMessage, outbox_id)
        event_id = f"provider:{event_id}"[:200]
        # The key for every month first (EventKey), the event row with it.
        at = now()
        if not EventKey.claim(db.session, "tracking", firm_id, [event_id], at):
            db.session.rollback()
            return {"status": "duplicate", "email_id": outbox_id}
        try:
            event = _event(row, kind, url=url, event_id=event_id, detail=detail)
            event.created_at = at
            db.session.add(event)
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            return {"status": "duplicate", "email_id": outbox_id}
        if kind == "unsubscribe":
            _unsubscribe_contact(row, record=False)
        else:
            _learn(row, kind, bounce)
            db.session.commit()
            data = {"bounce_type": bounce.kind} if bounce else None
            _emit(row, kind, bus_event_id(row, kind, url, fallback=event_id), url=url, extra=data)
    result = {"status": "recorded", "email_id": outbox_id, "kind": kind}
    if bounce is not None:
        result["bounce_type"] = bounce.kind
    return result


def _learn(row: OutboxMessage, kind: str, bounce: Bounce | None) -> None:
    """A hard bounce or a complaint suppresses the address; a soft bounce
    counts towards SOFT_BOUNCE_LIMIT. In the callback's transaction."""
    conn = db.session.connection()
    if kind == "complaint":
        suppressions.add_from_delivery(
            conn,
            row.firm_id,
            row.to_address,
            "complaint",
            None,
            source="provider",
            outbox_id=row.id,
        )
    elif bounce is not None and bounce.kind == "hard":
        suppressions.add_from_delivery(
            conn,
            row.firm_id,
            row.to_address,
            "hard_bounce",
            bounce,
            source="provider",
            outbox_id=row.id,
        )
    if kind == "complaint" or (bounce is not None and bounce.kind == "hard"):
        pause.check_rate(conn, row.firm_id)
    elif bounce is not None and bounce.kind == "soft":
        db.session.flush()
        suppressions.note_soft_bounce(conn, row.firm_id, row.contact_id, row.to_address, row.id)
