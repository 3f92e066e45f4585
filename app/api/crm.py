"""Lists, forms, deals, tasks and inbound events (docs/CONTRACT.md "CRM")."""

from __future__ import annotations

import uuid

from flask import g
from pydantic import Field
from sqlalchemy import select

from app.api.access import get_or_404
from app.api.core import DbId, endpoint
from app.api.errors import refused, validation_error
from app.api.graph import referenced
from app.api.pagination import PageQuery, page_of, paginate
from app.api.schemas.batch import EventBatchOut
from app.api.schemas.crm import (
    DealCreate,
    DealOut,
    DealUpdate,
    EventIn,
    EventOut,
    FormCreate,
    FormOut,
    FormUpdate,
    ListCreate,
    ListOut,
    ListUpdate,
    TaskCreate,
    TaskOut,
    TaskUpdate,
)
from app.automation.crm import deals, forms, lists, tasks
from app.automation.crm.errors import CrmError
from app.automation.triggers.bus import emit
from app.automation.triggers.registry import TRIGGER_TYPES
from app.extensions import db
from app.models import Contact, ContactList, Deal, EventKey, Form, Task, User


def _changes(body) -> dict:
    return {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}


def _ids(changes: dict, references: dict) -> dict:
    """``changes`` with each referenced row (``{"contact": Contact}``)
    turned into its id column, checked to be one of the firm's (422)."""
    for field, model in references.items():
        if field in changes:
            changes[f"{field}_id"] = referenced(model, changes.pop(field), field).id
    return changes


# --- lists -------------------------------------------------------------------


@endpoint(
    "/lists/", tag="Lists", summary="List contact lists", query=PageQuery, response=page_of(ListOut)
)
def list_lists(query: PageQuery):
    return paginate(select(ContactList), ContactList.id, query)


@endpoint(
    "/lists/",
    "POST",
    tag="Lists",
    summary="Create a list",
    body=ListCreate,
    response=ListOut,
    status=201,
    errors=(409,),
)
def create_list(body: ListCreate):
    try:
        return lists.create_list(body.name, body.description)
    except CrmError as exc:
        db.session.rollback()
        raise refused(exc) from None


@endpoint("/lists/<int:list_id>/", tag="Lists", summary="Get a list", response=ListOut)
def get_list(list_id: int):
    return get_or_404(ContactList, list_id, what="list")


@endpoint(
    "/lists/<int:list_id>/",
    "PATCH",
    tag="Lists",
    summary="Update a list",
    body=ListUpdate,
    response=ListOut,
    errors=(409,),
)
def update_list(list_id: int, body: ListUpdate):
    contact_list = get_or_404(ContactList, list_id, what="list")
    changes = _changes(body)
    try:
        return lists.update_list(contact_list, changes.get("name"), changes.get("description"))
    except CrmError as exc:
        db.session.rollback()
        raise refused(exc) from None


@endpoint("/lists/<int:list_id>/", "DELETE", tag="Lists", summary="Delete a list", status=204)
def delete_list(list_id: int):
    lists.delete_list(get_or_404(ContactList, list_id, what="list"))


# --- forms -------------------------------------------------------------------


@endpoint("/forms/", tag="Forms", summary="List forms", query=PageQuery, response=page_of(FormOut))
def list_forms(query: PageQuery):
    return paginate(select(Form), Form.id, query)


@endpoint(
    "/forms/",
    "POST",
    tag="Forms",
    summary="Create a form",
    body=FormCreate,
    response=FormOut,
    status=201,
)
def create_form(body: FormCreate):
    """``form_key`` is generated; the public form is served at /f/<form_key>."""
    try:
        return forms.create_form(**body.model_dump(exclude_none=True))
    except CrmError as exc:
        db.session.rollback()
        raise refused(exc) from None


@endpoint("/forms/<int:form_id>/", tag="Forms", summary="Get a form", response=FormOut)
def get_form(form_id: int):
    return get_or_404(Form, form_id, what="form")


@endpoint(
    "/forms/<int:form_id>/",
    "PATCH",
    tag="Forms",
    summary="Update a form (form_key is read-only)",
    body=FormUpdate,
    response=FormOut,
)
def update_form(form_id: int, body: FormUpdate):
    form = get_or_404(Form, form_id, what="form")
    try:
        return forms.update_form(form, _changes(body))
    except CrmError as exc:
        db.session.rollback()
        raise refused(exc) from None


@endpoint("/forms/<int:form_id>/", "DELETE", tag="Forms", summary="Delete a form", status=204)
def delete_form(form_id: int):
    forms.delete_form(get_or_404(Form, form_id, what="form"))


# --- deals -------------------------------------------------------------------


class DealQuery(PageQuery):
    contact: DbId | None = None
    status: str | None = Field(default=None, max_length=10)


@endpoint("/deals/", tag="Deals", summary="List deals", query=DealQuery, response=page_of(DealOut))
def list_deals(query: DealQuery):
    stmt = select(Deal)
    if query.contact is not None:
        stmt = stmt.where(Deal.contact_id == query.contact)
    if query.status:
        stmt = stmt.where(Deal.status == query.status)
    return paginate(stmt, Deal.id, query, newest_first=True)


@endpoint(
    "/deals/",
    "POST",
    tag="Deals",
    summary="Create a deal",
    body=DealCreate,
    response=DealOut,
    status=201,
    errors=(422,),
)
def create_deal(body: DealCreate):
    return deals.create_deal(_ids(body.model_dump(exclude_none=True), {"contact": Contact}))


@endpoint("/deals/<int:deal_id>/", tag="Deals", summary="Get a deal", response=DealOut)
def get_deal(deal_id: int):
    return get_or_404(Deal, deal_id, what="deal")


@endpoint(
    "/deals/<int:deal_id>/",
    "PATCH",
    tag="Deals",
    summary="Update a deal (status won/lost fires deal_won/deal_lost)",
    body=DealUpdate,
    response=DealOut,
    errors=(422,),
)
def update_deal(deal_id: int, body: DealUpdate):
    deal = get_or_404(Deal, deal_id, what="deal")
    return deals.update_deal(deal, _ids(_changes(body), {"contact": Contact}))


@endpoint("/deals/<int:deal_id>/", "DELETE", tag="Deals", summary="Delete a deal", status=204)
def delete_deal(deal_id: int):
    deals.delete_deal(get_or_404(Deal, deal_id, what="deal"))


# --- tasks -------------------------------------------------------------------


class TaskQuery(PageQuery):
    contact: DbId | None = None
    assignee: DbId | None = None
    status: str | None = Field(default=None, max_length=10)


TASK_REFERENCES = {"contact": Contact, "assignee": User}


@endpoint("/tasks/", tag="Tasks", summary="List tasks", query=TaskQuery, response=page_of(TaskOut))
def list_tasks(query: TaskQuery):
    stmt = select(Task)
    if query.contact is not None:
        stmt = stmt.where(Task.contact_id == query.contact)
    if query.assignee is not None:
        stmt = stmt.where(Task.assignee_id == query.assignee)
    if query.status:
        stmt = stmt.where(Task.status == query.status)
    return paginate(stmt, Task.id, query, newest_first=True)


@endpoint(
    "/tasks/",
    "POST",
    tag="Tasks",
    summary="Create a task",
    body=TaskCreate,
    response=TaskOut,
    status=201,
    errors=(422,),
)
def create_task(body: TaskCreate):
    return tasks.create_task(_ids(body.model_dump(exclude_none=True), TASK_REFERENCES))


@endpoint("/tasks/<int:task_id>/", tag="Tasks", summary="Get a task", response=TaskOut)
def get_task(task_id: int):
    return get_or_404(Task, task_id, what="task")


@endpoint(
    "/tasks/<int:task_id>/",
    "PATCH",
    tag="Tasks",
    summary="Update a task",
    body=TaskUpdate,
    response=TaskOut,
    errors=(422,),
)
def update_task(task_id: int, body: TaskUpdate):
    task = get_or_404(Task, task_id, what="task")
    return tasks.update_task(task, _ids(_changes(body), TASK_REFERENCES))


@endpoint("/tasks/<int:task_id>/", "DELETE", tag="Tasks", summary="Delete a task", status=204)
def delete_task(task_id: int):
    tasks.delete_task(get_or_404(Task, task_id, what="task"))


# --- events ------------------------------------------------------------------


@endpoint(
    "/events/",
    "POST",
    tag="Events",
    summary="Report an event from another system",
    body=EventIn,
    response=EventOut,
    status=202,
    errors=(422,),
    batch=(EventIn, EventBatchOut),
)
def post_event(body: EventIn | list):
    """Any trigger type (``email_opened``, ``page_visited``, ...) for one of
    your contacts; starts the workflows it triggers. A repeated
    ``event_id`` is a no-op (``duplicate: true``).

    Batch form: a JSON array of up to 1,000 events, answered 200 with one
    result per item in order (``status`` 202, or the item's error: 422 for
    an unknown type or contact). A batch counts once against the rate limit."""
    if isinstance(body, list):
        from app.api.batch_views import event_batch

        return event_batch(g.user.firm_id, body)

    if body.type not in TRIGGER_TYPES:
        raise validation_error({"type": [f"unknown event type {body.type!r}"]}, status=422)
    referenced(Contact, body.contact_id, "contact_id")
    event_id = body.event_id or f"api_{uuid.uuid4().hex}"
    # The key table, not event_log: one probe, whatever month the event fell in.
    seen = db.session.scalars(
        select(EventKey.event_id).where(EventKey.scope == "event", EventKey.event_id == event_id)
    ).first()
    if seen is not None:
        return {"event_id": event_id, "duplicate": True, "executions": []}
    started = emit(
        g.user.firm_id,
        body.type,
        body.contact_id,
        data=body.data,
        event_id=event_id,
        source="api",
    )
    return {"event_id": event_id, "duplicate": False, "executions": started}
