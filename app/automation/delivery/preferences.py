"""The preference page behind every unsubscribe link, and RFC 8058 one-click.

The page shows the firm's name and wording, a switch per marketing topic
and "unsubscribe from all marketing"; transactional topics are listed as
always sent. A one-click POST (the mail client's, or a plain POST of the
link) opts out of the message's topic only; a message without a topic (the
firm has none) opts out of all marketing, as before topics existed.
Tokens are the unsubscribe tokens of ``app.automation.delivery.tracking``.
"""

from __future__ import annotations

from sqlalchemy import select

from app.automation.delivery import topics
from app.automation.delivery.tracking_events import (
    _emit,
    _event,
    _firm_of,
    _message,
    bus_event_id,
    mask_email,
)
from app.automation.hooks import facts as hook_facts
from app.clock import now
from app.extensions import db
from app.models import Contact, Firm, OutboxMessage, Topic
from app.queue import kick_hooks
from app.tenancy import firm_context

DEFAULT_WORDING = "Choose which e-mails {firm} may send you. You can change this at any time."


def _load(token: str):
    firm_id = _firm_of("unsubscribe", token)
    if firm_id is None:
        return None
    found = _message("unsubscribe", token)
    if found is None:
        return None
    _, row = found
    contact = db.session.get(Contact, row.contact_id) if row.contact_id else None
    return firm_id, row, contact


def page(token: str) -> dict | None:
    """What the page shows; None for a bad or foreign token."""
    firm_id = _firm_of("unsubscribe", token)
    if firm_id is None:
        return None
    with firm_context(firm_id):
        loaded = _load(token)
        if loaded is None:
            return None
        _, row, contact = loaded
        firm = db.session.get(Firm, firm_id)
        chosen = topics.subscriptions_of(contact) if contact else {}
        listed = db.session.scalars(select(Topic).order_by(Topic.kind, Topic.name)).all()
        custom = str((firm.settings or {}).get("preference_text") or "").strip()
        wording = custom or DEFAULT_WORDING.format(firm=firm.name)
        return {
            "firm": firm.name,
            "wording": wording,
            "email": mask_email(row.to_address),
            "all_marketing_off": bool(contact and contact.unsubscribed),
            "message_topic": row.topic_id,
            "topics": [
                {
                    "id": t.id,
                    "name": t.name,
                    "description": t.description,
                    "kind": t.kind,
                    "on": chosen.get(str(t.id), True),
                }
                for t in listed
            ],
        }


def save(token: str, wanted: set[int], all_marketing_off: bool, user_agent: str = "") -> bool:
    """The page's form: one switch per marketing topic (``wanted`` are the
    ones left on) and "unsubscribe from all marketing"."""
    firm_id = _firm_of("unsubscribe", token)
    if firm_id is None:
        return False
    with firm_context(firm_id):
        loaded = _load(token)
        if loaded is None or loaded[2] is None:
            return loaded is not None
        _, row, contact = loaded
        marketing = db.session.scalars(select(Topic.id).where(Topic.kind == "marketing")).all()
        topics.set_subscriptions(contact, {t: t in wanted for t in marketing}, source="preferences")
        opted_out = all_marketing_off and not contact.unsubscribed
        contact.unsubscribed = all_marketing_off
        contact.unsubscribed_at = now() if all_marketing_off else None
        _finish(row, user_agent, opted_out, "preferences")
    return True


def one_click(token: str, user_agent: str = "") -> bool:
    """RFC 8058: out of the message's topic only (all marketing when the
    message had none). Idempotent; False for a bad token."""
    firm_id = _firm_of("unsubscribe", token)
    if firm_id is None:
        return False
    with firm_context(firm_id):
        loaded = _load(token)
        if loaded is None:
            return False
        _, row, contact = loaded
        if contact is None:
            db.session.commit()
            return True
        topic = db.session.get(Topic, row.topic_id) if row.topic_id else None
        if topic is not None and topic.kind == "marketing":
            changed = topics.set_subscriptions(contact, {topic.id: False}, source="one-click")
        else:
            changed = [] if contact.unsubscribed else ["all"]
            if changed:
                contact.unsubscribed, contact.unsubscribed_at = True, now()
        _finish(row, user_agent, bool(changed), "one_click")
    return True


def _finish(row: OutboxMessage, user_agent: str, opted_out: bool, how: str) -> None:
    if opted_out:
        db.session.add(_event(row, "unsubscribe", user_agent=user_agent))
        hook_facts.unsubscribed(row, how)
    db.session.commit()
    if opted_out:
        kick_hooks()
        _emit(row, "unsubscribe", bus_event_id(row, "unsubscribe"))
