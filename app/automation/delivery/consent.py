"""What a contact agreed to, for the contact page and the API: its topic
subscriptions and its consent records (when, which form, the address and
browser it came from, the words it was shown)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from app.automation.delivery.topics import subscribed_facts
from app.extensions import db
from app.models import ConsentRecord, Contact


def attach(contacts: list[Contact]) -> None:
    """Set ``subscriptions`` and ``consent`` on each contact (two queries
    for the whole list, never one per contact)."""
    if not contacts:
        return
    facts = subscribed_facts(
        db.session.connection(),
        {c.id: {"firm_id": c.firm_id, "unsubscribed": c.unsubscribed} for c in contacts},
    )
    records = defaultdict(list)
    stmt = (
        select(ConsentRecord)
        .where(ConsentRecord.contact_id.in_([c.id for c in contacts]))
        .order_by(ConsentRecord.id)
    )
    for record in db.session.scalars(stmt):
        records[record.contact_id].append(record)
    for contact in contacts:
        contact.subscriptions = {str(t): on for t, on in facts.get(contact.id, {}).items()}
        contact.consent = records[contact.id]
