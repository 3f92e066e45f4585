"""Contacts: the list (search, tag and list filters, bulk "add to workflow"),
create and edit, and a contact's page with tags, lists, deals, tasks and the
timeline of every workflow execution ("why did this contact get this email?").

Tag and list changes go through the ORM, so the trigger bus sees them
(tag_added, added_to_list...) like any other CRM change.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import exists, or_, select
from sqlalchemy.orm import selectinload

from app.auth import login_required_page
from app.automation.crm import contacts, lists
from app.automation.crm.errors import CrmError
from app.automation.delivery import consent
from app.automation.engine.timeline import timelines
from app.extensions import db
from app.models import (
    Contact,
    ContactList,
    PublishedTrigger,
    Suppression,
    Tag,
    Task,
    Topic,
    Workflow,
    WorkflowExecution,
    contact_tags,
    list_members,
)
from app.web import contact_forms
from app.web.contact_enroll import EnrollRefused, start_many, start_one
from app.web.pages import (
    get_or_404,
    int_arg,
    int_list,
    is_htmx,
    local_path,
    page_or_block,
    paginate,
)

bp = Blueprint("contacts", __name__, url_prefix="/contacts")

PER_PAGE = 25
TIMELINE_LIMIT = 20
TAG_MAX = 100


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _startable_workflows() -> list[tuple[int, str, bool]]:
    """Active workflows as (id, name, has an active published manual trigger)."""
    manual = (
        select(PublishedTrigger.id)
        .where(
            PublishedTrigger.workflow_id == Workflow.id,
            PublishedTrigger.trigger_type == "manual",
            PublishedTrigger.is_active.is_(True),
        )
        .exists()
    )
    rows = db.session.execute(
        select(Workflow.id, Workflow.name, manual)
        .where(Workflow.status == "active")
        .order_by(Workflow.name)
    )
    return [(wid, name, bool(has_manual)) for wid, name, has_manual in rows]


@bp.get("", strict_slashes=False)
@login_required_page
def list_contacts():
    query = (request.args.get("q") or "").strip()[:200]
    tag_id = int_arg("tag")
    list_id = int_arg("list")
    stmt = select(Contact)
    if query:
        pattern = _like(query)
        stmt = stmt.where(
            or_(
                Contact.email.ilike(pattern, escape="\\"),
                Contact.first_name.ilike(pattern, escape="\\"),
                Contact.last_name.ilike(pattern, escape="\\"),
            )
        )
    if tag_id:
        stmt = stmt.where(
            exists().where(contact_tags.c.contact_id == Contact.id, contact_tags.c.tag_id == tag_id)
        )
    if list_id:
        stmt = stmt.where(
            exists().where(
                list_members.c.contact_id == Contact.id, list_members.c.list_id == list_id
            )
        )
    page = paginate(
        stmt.order_by(Contact.created_at.desc(), Contact.id.desc()),
        PER_PAGE,
        options=(selectinload(Contact.tags),),
    )
    return page_or_block(
        "contacts/list.html",
        "results",
        page=page,
        q=query,
        tag_id=tag_id,
        list_id=list_id,
        tags=db.session.scalars(select(Tag).order_by(Tag.name)).all(),
        lists=db.session.scalars(select(ContactList).order_by(ContactList.name)).all(),
        workflows=_startable_workflows(),
    )


@bp.route("/new", methods=["GET", "POST"])
@login_required_page
def create():
    values = contact_forms.form_values(None)
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = contact_forms.read_form(request.form)
        data, errors = contact_forms.clean(values, None)
        if not errors:
            try:
                contact = contacts.create_contact(data)
            except CrmError as exc:
                db.session.rollback()
                errors = {exc.field or "email": exc.message}
            else:
                flash(f"Added {contact.email}.")
                return redirect(url_for("contacts.show", contact_id=contact.id))
    return render_template("contacts/form.html", contact=None, values=values, errors=errors), (
        400 if errors else 200
    )


@bp.route("/<int:contact_id>/edit", methods=["GET", "POST"])
@login_required_page
def edit(contact_id: int):
    contact = get_or_404(Contact, contact_id)
    values = contact_forms.form_values(contact)
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = contact_forms.read_form(request.form)
        data, errors = contact_forms.clean(values, contact)
        if not errors:
            try:
                contacts.update_contact(contact, data)
            except CrmError as exc:
                db.session.rollback()
                errors = {exc.field or "email": exc.message}
            else:
                flash("Saved.")
                return redirect(url_for("contacts.show", contact_id=contact.id))
    return render_template("contacts/form.html", contact=contact, values=values, errors=errors), (
        400 if errors else 200
    )


def _show_context(contact: Contact, **extra) -> dict:
    executions = db.session.scalars(
        select(WorkflowExecution)
        .where(WorkflowExecution.contact_id == contact.id)
        .order_by(WorkflowExecution.started_at.desc(), WorkflowExecution.id.desc())
        .limit(TIMELINE_LIMIT + 1)
    ).all()
    tasks = db.session.scalars(
        select(Task).where(Task.contact_id == contact.id).order_by(Task.id.desc())
    ).all()
    member_of = {item.id for item in contact.lists}
    consent.attach([contact])
    context = {
        "contact": contact,
        "topics": {str(t.id): t for t in db.session.scalars(select(Topic).order_by(Topic.name))},
        "suppression": db.session.scalars(
            select(Suppression).where(Suppression.address == contact.email.lower())
        ).first(),
        "views": timelines(executions[:TIMELINE_LIMIT]),
        "more_executions": len(executions) > TIMELINE_LIMIT,
        "tasks": tasks,
        "all_lists": [
            item
            for item in db.session.scalars(select(ContactList).order_by(ContactList.name))
            if item.id not in member_of
        ],
        "workflows": _startable_workflows(),
        "tag_error": None,
        "start_error": None,
    }
    context.update(extra)
    return context


@bp.get("/<int:contact_id>")
@login_required_page
def show(contact_id: int):
    contact = get_or_404(Contact, contact_id)
    return page_or_block("contacts/show.html", "timeline", **_show_context(contact))


def _membership_response(contact: Contact, status: int = 200, **extra):
    """HTMX: the tags-and-lists card; otherwise back to the contact page."""
    if is_htmx():
        return page_or_block(
            "contacts/show.html", "membership", status, **_show_context(contact, **extra)
        )
    if status >= 400:
        return render_template("contacts/show.html", **_show_context(contact, **extra)), status
    return redirect(url_for("contacts.show", contact_id=contact.id))


@bp.post("/<int:contact_id>/tags")
@login_required_page
def add_tag(contact_id: int):
    contact = get_or_404(Contact, contact_id)
    try:
        lists.tag_contact(contact, request.form.get("tag"))
    except CrmError as exc:
        db.session.rollback()
        error = "Type a tag name." if not (request.form.get("tag") or "").strip() else exc.message
        return _membership_response(contact, 400, tag_error=error)
    return _membership_response(contact)


@bp.post("/<int:contact_id>/tags/<int:tag_id>/remove")
@login_required_page
def remove_tag(contact_id: int, tag_id: int):
    contact = get_or_404(Contact, contact_id)
    lists.untag_contact(contact, get_or_404(Tag, tag_id).name)
    return _membership_response(contact)


@bp.post("/<int:contact_id>/lists")
@login_required_page
def add_to_list(contact_id: int):
    contact = get_or_404(Contact, contact_id)
    list_id = int_list([request.form.get("list_id", "")])
    target = (
        db.session.scalars(select(ContactList).where(ContactList.id == list_id[0])).first()
        if list_id
        else None
    )
    if target is None:
        return _membership_response(contact, 400, tag_error="Choose a list.")
    lists.add_to_list(contact, target)
    return _membership_response(contact)


@bp.post("/<int:contact_id>/lists/<int:list_id>/remove")
@login_required_page
def remove_from_list(contact_id: int, list_id: int):
    contact = get_or_404(Contact, contact_id)
    lists.remove_from_list(contact, get_or_404(ContactList, list_id))
    return _membership_response(contact)


def _chosen_workflow() -> Workflow | None:
    ids = int_list([request.form.get("workflow_id", "")])
    if not ids:
        return None
    return db.session.scalars(select(Workflow).where(Workflow.id == ids[0])).first()


@bp.post("/<int:contact_id>/start")
@login_required_page
def start_workflow(contact_id: int):
    """The manual trigger for one contact (trigger_manual)."""
    contact = get_or_404(Contact, contact_id)
    workflow = _chosen_workflow()
    try:
        message = start_one(g.user, workflow, contact)
    except EnrollRefused as exc:
        db.session.rollback()
        if is_htmx():
            return page_or_block(
                "contacts/show.html",
                "timeline",
                400,
                **_show_context(contact, start_error=str(exc)),
            )
        return render_template(
            "contacts/show.html", **_show_context(contact, start_error=str(exc))
        ), 400
    flash(message)
    if is_htmx():
        return page_or_block("contacts/show.html", "timeline", **_show_context(contact))
    return redirect(url_for("contacts.show", contact_id=contact.id))


@bp.post("/enroll")
@login_required_page
def bulk_enroll():
    """ "Add selected to workflow" from the list (trigger_manual_many)."""
    ids = int_list(request.form.getlist("ids"))
    workflow = _chosen_workflow()
    back = local_path(request.form.get("next"), url_for("contacts.list_contacts"))
    try:
        message = start_many(g.user, workflow, ids)
    except EnrollRefused as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(back, code=303)
    flash(message)
    return redirect(back, code=303)
