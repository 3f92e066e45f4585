"""CRM changes become trigger events, after the change is committed.

SQLAlchemy session events watch every ORM flush, whichever code made it
(UI, API, public form): new and changed contacts (with old/new values),
tags and lists added or removed through ``Contact.tags`` / ``Contact.lists``
(or ``ContactList.contacts``), deals created, moved between stages,
revalued, won or lost. The events are held until the transaction commits
and then handed to the bus; a rollback (or a rolled-back savepoint) drops
the events collected inside it, so nothing fires for a change that never
happened.

The engine writes its CRM changes with Core statements (no ORM events) and
calls ``bus.emit_many`` itself with its own workflow excluded. Code that
changes CRM rows through the ORM on behalf of a workflow can set
``session.info["exclude_workflow_id"]`` for the same effect; forms set
``session.info["event_source"] = "form"``.
"""

from __future__ import annotations

import logging
import uuid

from flask import g, has_app_context, has_request_context
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, SessionTransaction

from app.automation.triggers.bus import emit_many
from app.models import Contact, ContactList, Deal

log = logging.getLogger(__name__)

PENDING = "trigger_events_pending"  # [(transaction, event)], still revocable
READY = "trigger_events_ready"  # committed, waiting for the transaction to end
BUSY = "trigger_events_dispatching"

# Columns whose changes are bookkeeping, not news.
_QUIET = {"id", "firm_id", "created_at", "updated_at"}
_CONTACT_COLUMNS = [c.key for c in Contact.__mapper__.column_attrs if c.key not in _QUIET]
_DEAL_WATCHED = ("stage", "value", "status")


def _noop(target, value, old, initiator) -> None:
    return None


def _keep_old_values(*attributes) -> None:
    """Load an attribute's old value before it is overwritten, so a change
    made on an expired object (after a commit) still knows what it was."""
    for attribute in attributes:
        event.listen(attribute, "set", _noop, active_history=True)


_keep_old_values(*(getattr(Contact, name) for name in _CONTACT_COLUMNS))
_keep_old_values(*(getattr(Deal, name) for name in _DEAL_WATCHED))


def _source(session: Session) -> str:
    if session.info.get("event_source"):
        return session.info["event_source"]
    if has_request_context():
        if g.get("api_token") is not None:
            return "api"
        return "ui" if g.get("user") is not None else "public"
    return "system"


def _innermost(session: Session) -> SessionTransaction | None:
    return session.get_nested_transaction() or session.get_transaction()


@event.listens_for(Session, "after_flush")
def _collect(session: Session, flush_context) -> None:
    events: list[dict] = []
    for obj in session.new:
        if isinstance(obj, Contact):
            events.append(_event(obj.firm_id, "contact_created", obj.id, {"email": obj.email}))
            events.extend(_membership_events(obj))
        elif isinstance(obj, Deal):
            events.extend(_deal_created(obj))
        elif isinstance(obj, ContactList):
            events.extend(_list_side_events(obj))
    for obj in session.dirty:
        if isinstance(obj, Contact):
            events.extend(_contact_changed(obj))
            events.extend(_membership_events(obj))
        elif isinstance(obj, Deal):
            events.extend(_deal_changed(obj))
        elif isinstance(obj, ContactList):
            events.extend(_list_side_events(obj))
    if not events:
        return
    source = _source(session)
    exclude = session.info.get("exclude_workflow_id")
    transaction = _innermost(session)
    pending = session.info.setdefault(PENDING, [])
    seen = {_identity(e) for _, e in pending}
    for item in events:
        item["source"] = item.get("source") or source
        item["exclude_workflow_id"] = exclude
        if _identity(item) in seen:
            continue  # a list join seen from both sides of the relationship
        seen.add(_identity(item))
        pending.append((transaction, item))


def emit_after_commit(session: Session, item: dict) -> None:
    """Hand ``item`` (an event shaped by :func:`crm_event`) to the bus once
    the session's transaction commits, as the ORM changes are: for CRM
    writes made with Core statements inside a caller's transaction (topic
    subscriptions). A rollback drops it."""
    item = {**item, "exclude_workflow_id": session.info.get("exclude_workflow_id")}
    item["source"] = item.get("source") or _source(session)
    session.info.setdefault(PENDING, []).append((_innermost(session), item))


def _identity(item: dict):
    data = item["data"]
    if item["event_type"].startswith(("contact_list_", "contact_tag_")):
        return (item["event_type"], item["contact_id"], data.get("list"), data.get("tag"))
    return item["event_id"]


@event.listens_for(Session, "after_soft_rollback")
def _discard(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(PENDING)
    if not pending:
        return
    session.info[PENDING] = [
        (trans, item) for trans, item in pending if not _within(trans, previous_transaction)
    ]


def _within(transaction: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    pending = session.info.pop(PENDING, None)
    if pending:
        session.info.setdefault(READY, []).extend(item for _, item in pending)


@event.listens_for(Session, "after_transaction_end")
def _dispatch(session: Session, transaction: SessionTransaction) -> None:
    # Only once the outermost transaction is over may the session run SQL
    # again; the bus then works in a transaction of its own.
    if transaction.parent is not None or session.info.get(BUSY) or not session.info.get(READY):
        return
    if not has_app_context():
        session.info.pop(READY, None)
        return

    session.info[BUSY] = True
    try:
        while session.info.get(READY):
            batch = session.info.pop(READY)
            try:
                emit_many(batch)
            except Exception:  # the CRM change stands; a trigger failure is logged
                log.exception("could not dispatch %d CRM trigger events", len(batch))
                from app.extensions import db

                db.session.rollback()
    finally:
        session.info[BUSY] = False


def _event(firm_id, event_type: str, contact_id, data: dict) -> dict:
    return {
        "firm_id": firm_id,
        "event_type": event_type,
        "contact_id": contact_id,
        "data": data,
        "event_id": f"crm_{uuid.uuid4().hex}",
    }


def crm_event(firm_id, event_type: str, contact_id, data: dict, source: str) -> dict:
    """An event shaped as this module makes them, for code that writes CRM
    rows with Core statements (a contact import) and emits them itself."""
    return {**_event(firm_id, event_type, contact_id, data), "source": source}


def _change(obj, name: str):
    """(old, new) when the attribute changed in this flush, else None."""
    history = inspect(obj).attrs[name].history
    if not history.added and not history.deleted:
        return None
    old = history.deleted[0] if history.deleted else None
    new = history.added[0] if history.added else getattr(obj, name)
    if old == new:
        return None
    return old, new


def _contact_changed(contact: Contact) -> list[dict]:
    changed = {}
    for name in _CONTACT_COLUMNS:
        change = _change(contact, name)
        if change is not None:
            changed[name] = list(change)
    if not changed:
        return []
    return [_event(contact.firm_id, "contact_updated", contact.id, {"changed": changed})]


def _membership_events(contact: Contact) -> list[dict]:
    events: list[dict] = []
    state = inspect(contact)
    tags = state.attrs.tags.history
    for tag in tags.added:
        events.append(_tag_event(contact, "contact_tag_added", tag))
    for tag in tags.deleted:
        events.append(_tag_event(contact, "contact_tag_removed", tag))
    lists = state.attrs.lists.history
    for contact_list in lists.added:
        events.append(_list_event(contact, "contact_list_added", contact_list))
    for contact_list in lists.deleted:
        events.append(_list_event(contact, "contact_list_removed", contact_list))
    return events


def _list_side_events(contact_list: ContactList) -> list[dict]:
    history = inspect(contact_list).attrs.contacts.history
    return [
        _list_event(contact, "contact_list_added", contact_list) for contact in history.added
    ] + [_list_event(contact, "contact_list_removed", contact_list) for contact in history.deleted]


def _tag_event(contact: Contact, event_type: str, tag) -> dict:
    return _event(contact.firm_id, event_type, contact.id, {"tag": tag.name, "tag_id": tag.id})


def _list_event(contact: Contact, event_type: str, contact_list: ContactList) -> dict:
    return _event(
        contact.firm_id,
        event_type,
        contact.id,
        {"list": contact_list.id, "list_name": contact_list.name},
    )


def _deal_data(deal: Deal) -> dict:
    return {
        "deal_id": deal.id,
        "title": deal.title,
        "value": str(deal.value) if deal.value is not None else None,
        "stage": deal.stage,
        "status": deal.status,
    }


def _deal_created(deal: Deal) -> list[dict]:
    if deal.contact_id is None:
        return []
    events = [_event(deal.firm_id, "deal_created", deal.contact_id, _deal_data(deal))]
    if deal.status in ("won", "lost"):
        events.append(
            _event(deal.firm_id, f"deal_{deal.status}", deal.contact_id, _deal_data(deal))
        )
    return events


def _deal_changed(deal: Deal) -> list[dict]:
    if deal.contact_id is None:
        return []
    events = []
    data = _deal_data(deal)
    stage = _change(deal, "stage")
    if stage is not None:
        events.append(
            _event(
                deal.firm_id,
                "deal_stage_changed",
                deal.contact_id,
                {**data, "from_stage": stage[0], "to_stage": stage[1]},
            )
        )
    value = _change(deal, "value")
    if value is not None:
        old, new = (None if v is None else str(v) for v in value)
        events.append(
            _event(
                deal.firm_id,
                "deal_value_changed",
                deal.contact_id,
                {**data, "old_value": old, "new_value": new},
            )
        )
    status = _change(deal, "status")
    if status is not None and status[1] in ("won", "lost"):
        events.append(_event(deal.firm_id, f"deal_{status[1]}", deal.contact_id, data))
    return events
