"""Which contacts a trigger's ``match``/``rules`` select.

Used for one contact when an event arrives (the bus) and for all contacts
of a firm in batches (``date_reached``, "enroll existing contacts").
The rules themselves are evaluated by the engine's one evaluator,
``app.automation.rules.evaluator.evaluate``, over ``app.automation.engine.context.facts_for``.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.automation.engine.context import facts_for
from app.automation.rules.evaluator import evaluate
from app.extensions import db
from app.models import Contact

BATCH = 500
ID_BATCH = 5000


def contact_matches(
    rule_group: dict, contact_id: int, context: dict | None = None, workflow_id: int | None = None
) -> bool:
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        return False
    return _evaluate(rule_group, contact, context or {}, workflow_id)


def _evaluate(rule_group: dict, contact: Contact, context: dict, workflow_id=None) -> bool:
    return bool(evaluate(rule_group, facts_for(contact, context=context, workflow_id=workflow_id)))


def passing(rule_group: dict | None, contacts: list[Contact], workflow_id=None) -> list[int]:
    """Ids of the loaded ``contacts`` that pass ``rule_group`` (all when None)."""
    if rule_group is None:
        return [c.id for c in contacts]
    return [c.id for c in contacts if _evaluate(rule_group, c, {}, workflow_id)]


def matching_contact_ids(
    rule_group: dict | None, batch: int = BATCH, workflow_id: int | None = None, where=()
) -> Iterator[list[int]]:
    """The current firm's contacts passing ``rule_group`` (all when None)
    and the extra SQL conditions ``where``, in id-ordered batches so a large
    firm never sits in memory at once."""
    last_id = 0
    if rule_group is None:
        # No rules: ids straight from the index, in large pages.
        while True:
            stmt = select(Contact.id).where(Contact.id > last_id, *where).order_by(Contact.id)
            ids = list(db.session.scalars(stmt.limit(max(batch, ID_BATCH))))
            if not ids:
                return
            last_id = ids[-1]
            yield ids
    while True:
        stmt = select(Contact).where(Contact.id > last_id, *where).order_by(Contact.id).limit(batch)
        if rule_group is not None:
            # Tags and lists of the whole batch in two queries, not per contact.
            stmt = stmt.options(selectinload(Contact.tags), selectinload(Contact.lists))
        contacts = list(db.session.scalars(stmt))
        if not contacts:
            return
        last_id = contacts[-1].id
        # The identity map holds rows weakly: a finished batch is freed.
        yield passing(rule_group, contacts, workflow_id)
