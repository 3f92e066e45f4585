"""Contacts: create, update, delete. The contact pages (app/web/contacts.py)
and the API (app/api/contacts.py) both call these, so the rules live once:
an e-mail address is stored lower-case and unique per firm (compared
without case), ``unsubscribed_at`` follows ``unsubscribed``, and each
change is audited and committed once. Refusals are :class:`CrmError`
(field ``email``, conflict: the address is taken). Changes reach the
triggers through the CRM events the models emit after commit."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.automation.crm.errors import CrmError
from app.clock import now
from app.extensions import db
from app.models import Contact
from app.models.audit import record

TAKEN = "Another contact already has this e-mail address."


def email_taken(email: str, exclude_id: int | None = None) -> bool:
    """Whether another contact of the current firm has this address."""
    stmt = select(Contact.id).where(func.lower(Contact.email) == email.strip().lower())
    if exclude_id is not None:
        stmt = stmt.where(Contact.id != exclude_id)
    return db.session.scalars(stmt.limit(1)).first() is not None


def _commit() -> None:
    try:
        db.session.commit()
    except IntegrityError:  # the same address added meanwhile
        db.session.rollback()
        raise CrmError(TAKEN, field="email", conflict=True) from None


def create_contact(fields: dict, tags=(), lists=()) -> Contact:
    """A new contact from column ``fields`` (``email`` required;
    ``unsubscribed`` optional), with ``tags`` and ``lists`` (rows)."""
    fields = dict(fields)
    email = str(fields.pop("email") or "").strip().lower()
    if email_taken(email):
        raise CrmError(TAKEN, field="email", conflict=True)
    contact = Contact(email=email, **fields)
    contact.unsubscribed_at = now() if contact.unsubscribed else None
    contact.tags = list(tags)
    contact.lists = list(lists)
    db.session.add(contact)
    db.session.flush()
    record("contact.created", contact, data={"email": email})
    _commit()
    return contact


def contact_for_email(email: str) -> tuple[Contact, bool]:
    """The current firm's contact with this address, made when there is
    none (the API's inbound actions by e-mail); and whether it was made.
    Two calls at once for one new address make one contact."""
    email = str(email or "").strip().lower()
    stmt = select(Contact).where(func.lower(Contact.email) == email).order_by(Contact.id)
    found = db.session.scalars(stmt.limit(1)).first()
    if found is not None:
        return found, False
    try:
        return create_contact({"email": email}), True
    except CrmError:  # made meanwhile by another request
        found = db.session.scalars(stmt.limit(1)).first()
        if found is None:
            raise
        return found, False


def update_contact(contact: Contact, changes: dict) -> Contact:
    """Set the given columns; ``unsubscribed`` moves ``unsubscribed_at``."""
    changes = dict(changes)
    if "email" in changes:
        changes["email"] = str(changes["email"] or "").strip().lower()
        if email_taken(changes["email"], exclude_id=contact.id):
            raise CrmError(TAKEN, field="email", conflict=True)
    if "unsubscribed" in changes and bool(changes["unsubscribed"]) != bool(contact.unsubscribed):
        contact.unsubscribed_at = now() if changes["unsubscribed"] else None
    for name, value in changes.items():
        setattr(contact, name, value)
    record("contact.updated", contact, data={"fields": sorted(changes)})
    _commit()
    return contact


def delete_contact(contact: Contact) -> None:
    record("contact.deleted", contact, data={"email": contact.email})
    db.session.delete(contact)
    db.session.commit()
