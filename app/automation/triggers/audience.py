"""Which contacts a trigger's ``match``/``rules`` select.

Used for one contact when an event arrives (the bus) and for all contacts
of a firm in batches (``date_reached``, "enroll existing contacts").
The rules themselves are evaluated by the engine's one evaluator,
``app.automation.rules.evaluate``; this module only loads the facts.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from app.extensions import db
from app.models import Contact

BATCH = 500


def contact_matches(rule_group: dict, contact_id: int, context: dict | None = None) -> bool:
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        return False
    return _evaluate(rule_group, contact, context or {})


def _evaluate(rule_group: dict, contact: Contact, context: dict) -> bool:
    from app.automation.rules import evaluate, facts_for

    return bool(evaluate(rule_group, facts_for(contact, context=context)))


def matching_contact_ids(rule_group: dict | None, batch: int = BATCH) -> Iterator[list[int]]:
    """The current firm's contacts passing ``rule_group`` (all when None),
    in id-ordered batches so a large firm never sits in memory at once."""
    last_id = 0
    while True:
        stmt = select(Contact).where(Contact.id > last_id).order_by(Contact.id).limit(batch)
        contacts = list(db.session.scalars(stmt))
        if not contacts:
            return
        last_id = contacts[-1].id
        if rule_group is None:
            yield [c.id for c in contacts]
        else:
            yield [c.id for c in contacts if _evaluate(rule_group, c, {})]
        # Loaded contacts are done with; keep the identity map small.
        for contact in contacts:
            db.session.expunge(contact)
