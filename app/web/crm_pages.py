"""Forms, lists and tags: the CRM objects triggers listen to (form
submitted, added to list, tag added...), managed from the browser."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from app.auth import login_required_page
from app.automation.crm import lists as crm_lists
from app.automation.crm.errors import CrmError
from app.automation.triggers.forms import FIELD_TYPES
from app.extensions import db
from app.models import ContactList, Form, FormSubmission, Tag, contact_tags, list_members
from app.models.audit import record
from app.web import crm_form_fields as ff
from app.web.pages import get_or_404

bp = Blueprint("crm", __name__)

NAME_MAX = 200


def _clean_name(raw: str | None, limit: int = NAME_MAX) -> tuple[str, str | None]:
    name = " ".join((raw or "").split())
    if not name:
        return name, "Enter a name."
    if len(name) > limit:
        return name, f"Keep it under {limit} characters."
    return name, None


# ---- Forms ------------------------------------------------------------------


@bp.get("/forms")
@login_required_page
def forms():
    counts = dict(
        db.session.execute(
            select(FormSubmission.form_id, func.count()).group_by(FormSubmission.form_id)
        ).all()
    )
    rows = db.session.scalars(select(Form).order_by(Form.name)).all()
    return render_template("crm/forms.html", forms=rows, counts=counts, error=None, name="")


@bp.post("/forms")
@login_required_page
def create_form():
    name, error = _clean_name(request.form.get("name"))
    if error:
        rows = db.session.scalars(select(Form).order_by(Form.name)).all()
        return render_template("crm/forms.html", forms=rows, counts={}, error=error, name=name), 400
    form = Form(
        name=name,
        fields=[
            {"name": "email", "label": "Email", "type": "email", "required": True},
            {"name": "first_name", "label": "First name", "type": "text", "required": False},
        ],
    )
    db.session.add(form)
    db.session.flush()
    record("form.created", form)
    db.session.commit()
    flash(f"Created the form “{form.name}”. Choose its fields below.")
    return redirect(url_for("crm.edit_form", form_id=form.id))


def _form_page(form: Form, values: dict, rows: list[dict], errors: dict, status: int = 200):
    submissions = db.session.scalars(
        select(FormSubmission)
        .where(FormSubmission.form_id == form.id)
        .order_by(FormSubmission.id.desc())
        .limit(20)
    ).all()
    public_url = f"{current_app.config['BASE_URL']}/f/{form.form_key}"
    return render_template(
        "crm/form_edit.html",
        form_obj=form,
        values=values,
        rows=rows,
        errors=errors,
        field_types=sorted(FIELD_TYPES),
        contact_fields=ff.CONTACT_FIELDS,
        submissions=submissions,
        public_url=public_url,
    ), status


@bp.get("/forms/<int:form_id>")
@login_required_page
def edit_form(form_id: int):
    form = get_or_404(Form, form_id)
    values = {
        "name": form.name,
        "success_message": form.success_message or "",
        "redirect_url": form.redirect_url or "",
    }
    return _form_page(form, values, ff.field_rows(form.fields or []), {})


@bp.post("/forms/<int:form_id>")
@login_required_page
def save_form(form_id: int):
    form = get_or_404(Form, form_id)
    values = {
        "name": request.form.get("name", ""),
        "success_message": (request.form.get("success_message") or "").strip(),
        "redirect_url": (request.form.get("redirect_url") or "").strip(),
    }
    errors: dict = {}
    values["name"], name_error = _clean_name(values["name"])
    if name_error:
        errors["name"] = name_error
    if len(values["success_message"]) > 2000:
        errors["success_message"] = "Keep the message under 2,000 characters."
    redirect_problem = ff.redirect_error(values["redirect_url"])
    if redirect_problem:
        errors["redirect_url"] = redirect_problem
    rows = ff.read_rows(request.form)
    fields, row_errors = ff.clean_rows(rows)
    if row_errors:
        errors["rows"] = row_errors
    if errors:
        return _form_page(form, values, rows, errors, 400)
    form.name = values["name"]
    form.success_message = values["success_message"] or "Thank you!"
    form.redirect_url = values["redirect_url"]
    form.fields = fields
    record("form.updated", form)
    db.session.commit()
    flash("Form saved.")
    return redirect(url_for("crm.edit_form", form_id=form.id))


@bp.post("/forms/<int:form_id>/delete")
@login_required_page
def delete_form(form_id: int):
    form = get_or_404(Form, form_id)
    record("form.deleted", form, data={"name": form.name})
    db.session.delete(form)
    db.session.commit()
    flash(f"Deleted the form “{form.name}”.")
    return redirect(url_for("crm.forms"))


# ---- Lists and tags -----------------------------------------------------------


def _lists_page(error: str | None = None, name: str = "", status: int = 200):
    counts = dict(
        db.session.execute(
            select(list_members.c.list_id, func.count())
            .join(ContactList, ContactList.id == list_members.c.list_id)
            .group_by(list_members.c.list_id)
        ).all()
    )
    rows = db.session.scalars(select(ContactList).order_by(ContactList.name)).all()
    return render_template(
        "crm/lists.html", lists=rows, counts=counts, error=error, name=name
    ), status


@bp.get("/lists")
@login_required_page
def lists():
    return _lists_page()


@bp.post("/lists")
@login_required_page
def create_list():
    raw = request.form.get("name")
    try:
        item = crm_lists.create_list(raw, request.form.get("description"))
    except CrmError as exc:
        db.session.rollback()
        return _lists_page(exc.message, " ".join((raw or "").split()), 400)
    flash(f"Created the list “{item.name}”.")
    return redirect(url_for("crm.lists"))


@bp.post("/lists/<int:list_id>/delete")
@login_required_page
def delete_list(list_id: int):
    item = get_or_404(ContactList, list_id)
    crm_lists.delete_list(item)
    flash(f"Deleted the list “{item.name}” (its contacts stay).")
    return redirect(url_for("crm.lists"))


def _tags_page(error: str | None = None, name: str = "", status: int = 200):
    counts = dict(
        db.session.execute(
            select(contact_tags.c.tag_id, func.count())
            .join(Tag, Tag.id == contact_tags.c.tag_id)
            .group_by(contact_tags.c.tag_id)
        ).all()
    )
    rows = db.session.scalars(select(Tag).order_by(Tag.name)).all()
    return render_template(
        "crm/tags.html", tags=rows, counts=counts, error=error, name=name
    ), status


@bp.get("/tags")
@login_required_page
def tags():
    return _tags_page()


@bp.post("/tags")
@login_required_page
def create_tag():
    raw = request.form.get("name")
    try:
        tag = crm_lists.create_tag(raw)
    except CrmError as exc:
        db.session.rollback()
        return _tags_page(exc.message, " ".join((raw or "").split()), 400)
    flash(f"Created the tag “{tag.name}”.")
    return redirect(url_for("crm.tags"))


@bp.post("/tags/<int:tag_id>/delete")
@login_required_page
def delete_tag(tag_id: int):
    tag = get_or_404(Tag, tag_id)
    crm_lists.delete_tag(tag)
    flash(f"Deleted the tag “{tag.name}” from every contact.")
    return redirect(url_for("crm.tags"))
