"""Who is in an audience now, kept as contacts change; entering and leaving
become ``segment_entered`` / ``segment_left`` events.

``audience_members`` is the truth: a contact enters when its row is
inserted and leaves when it is deleted, so a change fires its event exactly
once however many copies of the work run (the insert or delete that finds
nothing to do fires nothing; docs/CONTRACT.md "Promises").

- On a change: the trigger bus (app/automation/triggers/bus.py) hands every
  event's contacts to :func:`refresh_contacts` before it matches triggers;
  the firm's audiences are re-checked for those contacts alone and the
  segment events go through the bus with the rest.
- As time passes: an audience with a time window ("opened in the last 30
  days") is diffed whole by :func:`refresh_timed`, a periodic job.
- On a save (:func:`resync`): the members are filled silently; nobody
  "enters" because an audience was created or its rules edited.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Integer, delete, exists, literal, not_, select
from sqlalchemy.dialects import postgresql, sqlite

from app.automation.audiences.counting import matching_among, sql_condition
from app.automation.rules.references import audience_ids_in
from app.automation.triggers.audience import matching_contact_ids
from app.clock import now
from app.extensions import db
from app.models import Audience, Contact, audience_members
from app.models.base import UTCDateTime

_members = audience_members


def _insert():
    dialect = db.session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(_members)


def _diff(audience: Audience, contact_ids: list[int] | None) -> tuple[list[int], list[int]]:
    """Make the members match the rules (for ``contact_ids`` only, or all);
    returns the contacts that entered and those that left by this call."""
    moment = now()
    where = sql_condition(audience.rule_group)
    member = _members.c.audience_id == audience.id
    if contact_ids is not None:
        member = member & _members.c.contact_id.in_(contact_ids)
    if where is not None:
        scope = [Contact.firm_id == audience.firm_id, where]
        if contact_ids is not None:
            scope.append(Contact.id.in_(contact_ids))
        still = exists(select(1).where(Contact.id == _members.c.contact_id, *scope))
        left = db.session.execute(
            delete(_members).where(member, not_(still)).returning(_members.c.contact_id)
        ).scalars()
        left_ids = sorted(left)
        already = exists(
            select(1).where(
                _members.c.audience_id == audience.id, _members.c.contact_id == Contact.id
            )
        )
        source = select(_literal(audience.id), Contact.id, _literal_time(moment)).where(
            *scope, not_(already)
        )
        stmt = (
            _insert()
            .from_select(["audience_id", "contact_id", "entered_at"], source)
            .on_conflict_do_nothing()
            .returning(_members.c.contact_id)
        )
        entered_ids = sorted(db.session.execute(stmt).scalars())
        return entered_ids, left_ids
    # No SQL form: the Python evaluator decides, the same statements record.
    if contact_ids is None:
        matching = {cid for ids in matching_contact_ids(audience.rule_group) for cid in ids}
    else:
        matching = matching_among(audience.rule_group, contact_ids)
    current = set(db.session.scalars(select(_members.c.contact_id).where(member)))
    gone = sorted(current - matching)
    left_ids = []
    if gone:
        left_ids = sorted(
            db.session.execute(
                delete(_members)
                .where(_members.c.audience_id == audience.id, _members.c.contact_id.in_(gone))
                .returning(_members.c.contact_id)
            ).scalars()
        )
    new = sorted(matching - current)
    entered_ids = []
    if new:
        stmt = (
            _insert()
            .values(
                [
                    {"audience_id": audience.id, "contact_id": cid, "entered_at": moment}
                    for cid in new
                ]
            )
            .on_conflict_do_nothing()
            .returning(_members.c.contact_id)
        )
        entered_ids = sorted(db.session.execute(stmt).scalars())
    return entered_ids, left_ids


def _literal(value: int):
    return literal(value, Integer)


def _literal_time(value):
    return literal(value, UTCDateTime)


def _events(audience: Audience, entered: list[int], left: list[int], source: str) -> list[dict]:
    data = {"audience": audience.id, "audience_name": audience.name}
    return [
        {
            "firm_id": audience.firm_id,
            "event_type": kind,
            "contact_id": contact_id,
            "data": data,
            "event_id": f"seg_{uuid.uuid4().hex}",
            "source": source,
        }
        for kind, ids in (("segment_entered", entered), ("segment_left", left))
        for contact_id in ids
    ]


def resync(audience: Audience) -> None:
    """Fill the members of a saved audience, firing nothing. Does not commit."""
    _diff(audience, None)


def in_dependency_order(audiences: list[Audience]) -> list[Audience]:
    """Each audience after the audiences its rules name (an audience of
    audiences reads their membership rows, so those must be current
    first), else in id order. Cycles are refused on save
    (app/automation/audiences/saving.py); one stored before that check
    takes the rest in id order instead of looping."""
    by_id = {audience.id: audience for audience in audiences}
    waiting = {
        audience.id: (audience_ids_in(audience.rules) & by_id.keys()) - {audience.id}
        for audience in audiences
    }
    order: list[Audience] = []
    while waiting:
        ready = sorted(key for key, needs in waiting.items() if not needs) or sorted(waiting)
        for key in ready:
            order.append(by_id[key])
            del waiting[key]
        for needs in waiting.values():
            needs.difference_update(ready)
    return order


def resync_dependents(audience: Audience) -> None:
    """After ``audience``'s rules changed: re-fill, silently like a save,
    the audiences made of it (at any depth). Does not commit."""
    changed = {audience.id}
    for other in in_dependency_order(list(db.session.scalars(select(Audience)))):
        if other.id not in changed and audience_ids_in(other.rules) & changed:
            _diff(other, None)
            changed.add(other.id)


def refresh_contacts(contact_ids: Iterable[int], source: str = "") -> list[dict]:
    """Re-check the current firm's audiences for these contacts (they just
    changed); returns the segment events of who entered or left, for the
    bus to record and dispatch in its transaction. Does not commit."""
    ids = sorted({int(cid) for cid in contact_ids})
    if not ids:
        return []
    audiences = in_dependency_order(list(db.session.scalars(select(Audience))))
    events: list[dict] = []
    for audience in audiences:
        entered, left = _diff(audience, ids)
        events.extend(_events(audience, entered, left, source))
    return events


def refresh_timed() -> int:
    """The periodic job: audiences with a time window, diffed whole (a
    contact whose last open is now 31 days old leaves a 30-day audience).
    Each audience's diff and its segment events are one transaction of the
    bus (``emit_derived``). Returns how many contacts moved."""
    # The bus imports this module (refresh_contacts): imported at call time.
    from app.automation.triggers.bus import emit_derived

    table = Audience.__table__
    rows = db.session.execute(
        select(table.c.id, table.c.firm_id).where(table.c.timed.is_(True)).order_by(table.c.id)
    ).all()
    db.session.commit()
    moved = 0
    for audience_id, firm_id in rows:

        def derive(audience_id=audience_id) -> list[dict]:
            audience = db.session.get(Audience, audience_id)
            if audience is None:
                return []
            entered, left = _diff(audience, None)
            return _events(audience, entered, left, "audience")

        moved += emit_derived(firm_id, derive)
    return moved
