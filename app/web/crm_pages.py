"""Forms, lists and tags: the CRM objects triggers listen to (form
submitted, added to list, tag added...), managed from the browser."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from app.auth import login_required_page
from app.automation.crm import forms as crm_forms
from app.automation.crm import lists as crm_lists
from app.automation.crm.errors import CrmError
from app.extensions import db
from app.models import ContactList, Form, FormSubmission, Tag, contact_tags, list_members
from app.web import crm_form_fields as ff
from app.web.pages import get_or_404

bp = Blueprint("crm", __name__)


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
    raw = request.form.get("name")
    try:
        form = crm_forms.create_form(raw)
    except CrmError as exc:
        db.session.rollback()
        rows = db.session.scalars(select(Form).order_by(Form.name)).all()
        name = " ".join((raw or "").split())
        page = render_template(
            "crm/forms.html", forms=rows, counts={}, error=exc.message, name=name
        )
        return page, 400
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
        field_types=sorted(crm_forms.FIELD_TYPES),
        contact_fields=crm_forms.CONTACT_FIELDS,
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
    rows = ff.read_rows(request.form)
    try:
        crm_forms.update_form(form, {**values, "fields": rows})
    except CrmError as exc:
        db.session.rollback()
        values["name"] = " ".join(values["name"].split())
        return _form_page(form, values, rows, ff.page_errors(exc.errors), 400)
    flash("Form saved.")
    return redirect(url_for("crm.edit_form", form_id=form.id))


@bp.post("/forms/<int:form_id>/delete")
@login_required_page
def delete_form(form_id: int):
    form = get_or_404(Form, form_id)
    crm_forms.delete_form(form)
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
