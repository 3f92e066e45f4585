"""Many starts in one call: the batch forms of the events endpoint and the
API trigger (up to 1,000 items), set-based, one commit and one kick.

Each item gets its own outcome, the one the single call would have given:
an item that cannot be taken (an unknown contact or event type, a contact
already inside, a key used for another contact) is refused alone. The
idempotency rules are the single call's: a repeated ``event_id`` is a
no-op, a repeated idempotency key returns the execution it started.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select

from app.automation.engine.enrollment import NotEnrollable, entry_of, start_entries
from app.automation.triggers.bus import audit_firings, emit_each
from app.automation.triggers.registry import TRIGGER_TYPES
from app.extensions import db
from app.models import Contact, WorkflowExecution


class ItemRefused(Exception):
    """One item cannot be taken: ``status`` as the single call would answer,
    ``field`` the input at fault (if any)."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


@dataclass
class Started:
    execution_id: int
    contact_id: int
    duplicate: bool = False


@dataclass
class Reported:
    event_id: str
    duplicate: bool
    executions: list[int] = field(default_factory=list)


def _known_contacts(ids) -> set[int]:
    # The tenancy rule limits this to the current firm's contacts.
    wanted = {int(i) for i in ids}
    if not wanted:
        return set()
    return set(db.session.scalars(select(Contact.id).where(Contact.id.in_(wanted))))


def report_events(firm_id: int, items: list[dict | None]) -> list[Reported | ItemRefused | None]:
    """Record ``{"type", "contact_id", "data", "event_id"}`` items (None for
    an item already refused by its caller, kept in place) and start what
    they trigger. Commits once."""
    known = _known_contacts(item["contact_id"] for item in items if item)
    outcomes: list[Reported | ItemRefused | None] = []
    events = []
    for item in items:
        if item is None:
            outcomes.append(None)
        elif item["type"] not in TRIGGER_TYPES:
            outcomes.append(ItemRefused(422, f"unknown event type {item['type']!r}", "type"))
        elif int(item["contact_id"]) not in known:
            outcomes.append(ItemRefused(422, "no such contact id", "contact_id"))
        else:
            event_id = item.get("event_id") or f"api_{uuid.uuid4().hex}"
            outcomes.append(Reported(event_id, duplicate=True))
            events.append(
                {
                    "firm_id": firm_id,
                    "event_type": item["type"],
                    "contact_id": int(item["contact_id"]),
                    "data": item.get("data") or {},
                    "event_id": event_id,
                    "source": "api",
                }
            )
    fresh = emit_each(events) if events else {}
    for outcome in outcomes:
        # The first item of a fresh event id carries its executions; a
        # repeat (seen before, or earlier in this batch) is a no-op.
        if isinstance(outcome, Reported) and outcome.event_id in fresh:
            outcome.duplicate = False
            outcome.executions = fresh.pop(outcome.event_id)
    return outcomes


def start_many(workflow, trigger, items: list[tuple | None]) -> list[Started | ItemRefused | None]:
    """Start ``workflow`` for ``(contact_id, context, idempotency_key)``
    items (None kept in place); the workflow is active with an active
    api/manual trigger. Commits once, kicks the engine once."""
    try:
        entry = entry_of(workflow)
    except NotEnrollable as exc:
        raise ItemRefused(409, str(exc)) from exc
    event_ids = [None if item is None else _event_id(item[2]) for item in items]
    keyed = [eid for item, eid in zip(items, event_ids, strict=True) if item and item[2]]
    existing = _existing(workflow.id, keyed)
    known = _known_contacts(item[0] for item in items if item)
    fresh = []
    kind = trigger.trigger_type  # the trigger that allows the start: api or manual
    for item, event_id in zip(items, event_ids, strict=True):
        if item is None or event_id in existing or int(item[0]) not in known:
            continue
        context = {"trigger_type": kind, "event_id": event_id, "source": "api", **(item[1] or {})}
        fresh.append((int(item[0]), event_id, context))
    rows = start_entries(workflow, entry, fresh, trigger=trigger, trigger_type=kind)
    started = {event_id: (execution_id, contact_id) for execution_id, contact_id, event_id in rows}
    audit_firings(workflow, trigger, [(cid, eid, "api") for _, cid, eid in rows])
    db.session.commit()
    if rows:
        from app.queue import kick_engine

        kick_engine()
    outcomes: list[Started | ItemRefused | None] = []
    answered: set[str] = set()
    for item, event_id in zip(items, event_ids, strict=True):
        if item is None:
            outcomes.append(None)
            continue
        contact_id = int(item[0])
        found = existing.get(event_id) or started.get(event_id)
        if found is not None and found[1] != contact_id:
            outcomes.append(ItemRefused(409, "this idempotency_key was used for another contact"))
        elif found is not None:
            repeat = event_id in existing or event_id in answered
            outcomes.append(Started(found[0], contact_id, duplicate=repeat))
            answered.add(event_id)
        elif contact_id not in known:
            outcomes.append(ItemRefused(422, "no such contact id", "contact_id"))
        else:
            outcomes.append(
                ItemRefused(
                    409,
                    f"contact {contact_id} is already in workflow {workflow.id}"
                    + ("" if workflow.allow_reentry else " (re-entry is off)"),
                )
            )
    return outcomes


def _event_id(key: str | None) -> str:
    key = (key or "").strip()[:150]
    return f"api:{key}" if key else f"api:{uuid.uuid4().hex}"


def _existing(workflow_id: int, event_ids: list[str]) -> dict[str, tuple[int, int]]:
    """event id -> (execution id, contact id) of executions keyed already."""
    if not event_ids:
        return {}
    table = WorkflowExecution.__table__
    stmt = select(table.c.event_id, table.c.id, table.c.contact_id).where(
        table.c.workflow_id == workflow_id, table.c.event_id.in_(set(event_ids))
    )
    return {eid: (xid, cid) for eid, xid, cid in db.session.execute(stmt)}
