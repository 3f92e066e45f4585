"""Contacts and their tags and list memberships (docs/CONTRACT.md "CRM").

Changes go through the ORM, so the CRM trigger events (contact_created,
tag_added, list_joined, ...) fire from the flush hooks of
``app.automation.triggers.crm_events`` exactly as for browser edits.
"""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.access import get_or_404
from app.api.core import DbId, endpoint
from app.api.errors import ApiError, refused, validation_error
from app.api.graph import referenced
from app.api.pagination import PageQuery, page_of, paginate
from app.api.schemas.crm import (
    ContactCreate,
    ContactOut,
    ContactUpdate,
    ListRef,
    TagByEmailIn,
    TagIn,
)
from app.automation.crm import contacts, lists
from app.automation.crm.errors import CrmError
from app.automation.delivery import consent, topics
from app.extensions import db
from app.models import Contact, ContactList, Tag

TAG = "Contacts"
LIST = "/contacts/"
ONE = "/contacts/<int:contact_id>/"
RELATED = (selectinload(Contact.tags), selectinload(Contact.lists))


class ContactQuery(PageQuery):
    email: str | None = Field(default=None, max_length=320, description="exact e-mail address")
    tag: str | None = Field(default=None, max_length=100, description="contacts with this tag")
    list: DbId | None = Field(default=None, description="members of this list")


def load_contact(contact_id: int) -> Contact:
    contact = get_or_404(Contact, contact_id, *RELATED, what="contact")
    consent.attach([contact])
    return contact


def _duplicate_email() -> ApiError:
    return ApiError(
        409,
        "conflict",
        "a contact with this e-mail address already exists",
        fields={"email": ["already taken"]},
    )


def _refused(exc: CrmError) -> ApiError:
    return _duplicate_email() if exc.conflict else refused(exc)


@endpoint(LIST, tag=TAG, summary="List contacts", query=ContactQuery, response=page_of(ContactOut))
def list_contacts(query: ContactQuery):
    stmt = select(Contact).options(*RELATED)
    if query.email:
        stmt = stmt.where(Contact.email == query.email.strip().lower())
    if query.tag:
        stmt = stmt.where(Contact.tags.any(Tag.name == query.tag))
    if query.list is not None:
        stmt = stmt.where(Contact.lists.any(ContactList.id == query.list))
    page = paginate(stmt, Contact.id, query, newest_first=True)
    consent.attach(page["results"])
    return page


@endpoint(
    LIST,
    "POST",
    tag=TAG,
    summary="Create a contact",
    body=ContactCreate,
    response=ContactOut,
    status=201,
    errors=(409, 422),
)
def create_contact(body: ContactCreate):
    """``email`` is unique per firm (409); ``tags`` are names (created as
    needed); ``lists`` are list ids of your firm."""
    members = [referenced(ContactList, list_id, "lists") for list_id in body.lists]
    try:
        if contacts.email_taken(body.email):  # before tags are made for nothing
            raise CrmError(contacts.TAKEN, field="email", conflict=True)
        tags = [lists.tag_named(lists.clean_tag(name)) for name in body.tags]
        contact = contacts.create_contact(
            body.model_dump(exclude={"tags", "lists"}), tags=tags, lists=members
        )
    except CrmError as exc:
        db.session.rollback()
        raise _refused(exc) from None
    return load_contact(contact.id)


@endpoint(ONE, tag=TAG, summary="Get a contact", response=ContactOut)
def get_contact(contact_id: int):
    return load_contact(contact_id)


@endpoint(
    ONE,
    "PATCH",
    tag=TAG,
    summary="Update a contact",
    body=ContactUpdate,
    response=ContactOut,
    errors=(409,),
)
def update_contact(contact_id: int, body: ContactUpdate):
    contact = load_contact(contact_id)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    choices = changes.pop("subscriptions", None)
    if choices:
        try:
            topics.set_subscriptions(contact, choices, source="api")
        except topics.TopicError as exc:
            raise validation_error({exc.field: [exc.message]}) from None
    try:
        contacts.update_contact(contact, changes)
    except CrmError as exc:
        db.session.rollback()
        raise _refused(exc) from None
    return load_contact(contact_id)


@endpoint(ONE, "DELETE", tag=TAG, summary="Delete a contact", status=204)
def delete_contact(contact_id: int):
    contacts.delete_contact(load_contact(contact_id))


@endpoint(
    ONE + "tags/",
    "POST",
    tag=TAG,
    summary="Tag a contact",
    body=TagIn,
    response=ContactOut,
    status=201,
)
def add_tag(contact_id: int, body: TagIn):
    try:
        lists.tag_contact(load_contact(contact_id), body.tag)
    except CrmError as exc:
        db.session.rollback()
        raise refused(exc) from None
    return load_contact(contact_id)


@endpoint(
    LIST + "tags/",
    "POST",
    tag=TAG,
    summary="Tag the contact of an e-mail address (made if new)",
    body=TagByEmailIn,
    response=ContactOut,
    status=201,
)
def tag_by_email(body: TagByEmailIn):
    """For tools that know a person by address only (Zapier, Make): the
    firm's contact with ``email`` is tagged, and made first when there is
    none."""
    try:
        contact_id = lists.tag_contact_by_email(body.email, body.tag)
    except CrmError as exc:
        db.session.rollback()
        raise refused(exc) from None
    return load_contact(contact_id)


@endpoint(ONE + "tags/<tag>/", "DELETE", tag=TAG, summary="Remove a tag from a contact", status=204)
def remove_tag(contact_id: int, tag: str):
    if not lists.untag_contact(load_contact(contact_id), tag):
        raise ApiError(404, "not_found", f"the contact has no tag {tag!r}")


@endpoint(
    ONE + "lists/",
    "POST",
    tag=TAG,
    summary="Add a contact to a list",
    body=ListRef,
    response=ContactOut,
    status=201,
    errors=(422,),
)
def add_to_list(contact_id: int, body: ListRef):
    contact = load_contact(contact_id)
    lists.add_to_list(contact, referenced(ContactList, body.list, "list"))
    return load_contact(contact_id)


@endpoint(
    ONE + "lists/<int:list_id>/",
    "DELETE",
    tag=TAG,
    summary="Remove a contact from a list",
    status=204,
)
def remove_from_list(contact_id: int, list_id: int):
    contact = load_contact(contact_id)
    member = next((item for item in contact.lists if item.id == list_id), None)
    if member is None or not lists.remove_from_list(contact, member):
        raise ApiError(404, "not_found", "the contact is not in that list")
