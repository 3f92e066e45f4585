"""Contact lists and tags: create, rename, delete, membership. The pages
(app/web/crm_pages.py, contacts.py) and the API (app/api/crm.py,
contacts.py) call these, so a name is cleaned and checked for uniqueness
in one place. Each function audits and commits once; refusals are
:class:`CrmError`. Membership changes reach the triggers through the
CRM events the models emit after commit."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.automation.crm import contacts
from app.automation.crm.errors import CrmError, clean_name
from app.automation.crm.saving import delete_row, save_changed, save_new
from app.extensions import db
from app.models import Contact, ContactList, Tag
from app.models.audit import record

LIST_NAME_MAX = 200
LIST_DESCRIPTION_MAX = 5000
TAG_NAME_MAX = 100


# --- lists ---------------------------------------------------------------------


def _list_name_free(name: str, exclude_id: int | None = None) -> None:
    stmt = select(ContactList.id).where(ContactList.name == name)
    if exclude_id is not None:
        stmt = stmt.where(ContactList.id != exclude_id)
    if db.session.scalars(stmt).first() is not None:
        raise CrmError("A list with this name exists already.", field="name", conflict=True)


def _description(raw: str | None) -> str:
    text = (raw or "").strip()
    if len(text) > LIST_DESCRIPTION_MAX:
        raise CrmError(
            f"Keep the description under {LIST_DESCRIPTION_MAX:,} characters.",
            field="description",
        )
    return text


def create_list(name: str | None, description: str | None = "") -> ContactList:
    name = clean_name(name, LIST_NAME_MAX)
    _list_name_free(name)
    item = ContactList(name=name, description=_description(description))
    return save_new(item, "list.created", {"name": name})


def update_list(
    item: ContactList, name: str | None = None, description: str | None = None
) -> ContactList:
    """Change the given fields (None: keep)."""
    changed = []
    if name is not None:
        name = clean_name(name, LIST_NAME_MAX)
        _list_name_free(name, exclude_id=item.id)
        item.name = name
        changed.append("name")
    if description is not None:
        item.description = _description(description)
        changed.append("description")
    return save_changed(item, "list.updated", changed)


def delete_list(item: ContactList) -> None:
    """The list goes; its contacts stay."""
    delete_row(item, "list.deleted", {"name": item.name})


def add_to_list(contact: Contact, item: ContactList) -> bool:
    """Returns whether the contact was not in the list yet."""
    if item in contact.lists:
        return False
    contact.lists.append(item)
    record("contact.list_added", contact, data={"list": item.id})
    db.session.commit()
    return True


def remove_from_list(contact: Contact, item: ContactList) -> bool:
    if item not in contact.lists:
        return False
    contact.lists.remove(item)
    record("contact.list_removed", contact, data={"list": item.id})
    db.session.commit()
    return True


# --- tags ------------------------------------------------------------------------


def clean_tag(name: str | None) -> str:
    return clean_name(name, TAG_NAME_MAX, field="tag")


def tag_named(name: str) -> Tag:
    """The firm's tag of that (clean) name, created on first use (not
    committed: the caller's change commits it)."""
    tag = db.session.scalars(select(Tag).where(Tag.name == name)).first()
    if tag is None:
        tag = Tag(name=name)
        db.session.add(tag)
    return tag


def create_tag(name: str | None) -> Tag:
    name = clean_name(name, TAG_NAME_MAX)
    if db.session.scalar(select(Tag.id).where(Tag.name == name)):
        raise CrmError("This tag exists already.", field="name", conflict=True)
    tag = Tag(name=name)
    db.session.add(tag)
    try:
        db.session.flush()
    except IntegrityError:  # created meanwhile by another request
        db.session.rollback()
        raise CrmError("This tag exists already.", field="name", conflict=True) from None
    record("tag.created", tag, data={"name": name})
    db.session.commit()
    return tag


def delete_tag(tag: Tag) -> None:
    """The tag goes from every contact."""
    delete_row(tag, "tag.deleted", {"name": tag.name})


def tag_contact(contact: Contact, name: str | None) -> bool:
    """Tag the contact; returns whether it did not have the tag yet."""
    name = clean_tag(name)
    if name in {tag.name for tag in contact.tags}:
        return False
    contact.tags.append(tag_named(name))
    record("contact.tag_added", contact, data={"tag": name})
    db.session.commit()
    return True


def tag_contact_by_email(email: str, name: str | None) -> int:
    """Tag the firm's contact with this address, made first when there is
    none; returns its id (the API's inbound action)."""
    name = clean_tag(name)
    contact, _ = contacts.contact_for_email(email)
    tag_contact(contact, name)
    return contact.id


def untag_contact(contact: Contact, name: str) -> bool:
    """Remove the tag of that name; returns whether the contact had it."""
    kept = [tag for tag in contact.tags if tag.name != name]
    if len(kept) == len(contact.tags):
        return False
    contact.tags = kept
    record("contact.tag_removed", contact, data={"tag": name})
    db.session.commit()
    return True
