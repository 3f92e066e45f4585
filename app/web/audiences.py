"""Audience pages: the list, the editor (the builder's rule rows, with a
live count and a sample of ten contacts redrawn by HTMX as rules change),
delete, and "enroll this audience now" with a progress bar.

Thin: saving, counting and enrolling are app/automation/audiences/.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, select

from app.auth import login_required_page
from app.automation.audiences import counting, enroll, saving
from app.automation.crm.errors import CrmError
from app.extensions import db
from app.models import (
    Audience,
    AudienceEnrollment,
    ContactList,
    Tag,
    Topic,
    Workflow,
    audience_members,
)
from app.web.builder_forms import apply_row_action, values_from_form
from app.web.builder_rules import rules_from_values, rules_values
from app.web.pages import get_or_404, is_htmx

bp = Blueprint("audiences", __name__, url_prefix="/audiences")


def _pickers(exclude_id: int | None = None) -> dict[str, Any]:
    audiences = select(Audience.id, Audience.name).order_by(Audience.name)
    if exclude_id is not None:
        audiences = audiences.where(Audience.id != exclude_id)
    return {
        "tags": db.session.scalars(select(Tag.name).order_by(Tag.name).limit(500)).all(),
        "lists": db.session.execute(
            select(ContactList.id, ContactList.name).order_by(ContactList.name)
        ).all(),
        "topics": db.session.execute(
            select(Topic.id, Topic.name).order_by(Topic.kind, Topic.name)
        ).all(),
        "audiences": db.session.execute(audiences).all(),
        "email_nodes": [],
        "any_email": "any e-mail",
    }


def _page_errors(exc: CrmError) -> dict[str, list[str]]:
    """``rules[0].op`` (the API's names) as the rule rows' ``rules.0.op``."""
    return {
        key.replace("[", ".").replace("]", ""): [message] for key, message in exc.errors.items()
    }


def _editor(audience: Audience | None, values: dict, errors: dict, status: int = 200):
    context = {
        "audience": audience,
        "values": values,
        "errors": errors,
        "pickers": _pickers(audience.id if audience else None),
        "preview": _preview(values),
    }
    if audience is not None:
        context["workflows"] = db.session.execute(
            select(Workflow.id, Workflow.name)
            .where(Workflow.status == "active")
            .order_by(Workflow.name)
        ).all()
        context["jobs"] = db.session.scalars(
            select(AudienceEnrollment)
            .where(AudienceEnrollment.audience_id == audience.id)
            .order_by(AudienceEnrollment.id.desc())
            .limit(5)
        ).all()
    return render_template("audiences/edit.html", **context), status


def _preview(values: dict) -> dict:
    """The live count and sample of what the form's rules select now."""
    errors: dict[str, list[str]] = {}
    group = rules_from_values(values, errors)
    if not errors:
        try:
            group = saving.check_rules(group["match"], group["rules"])
        except CrmError as exc:
            errors = _page_errors(exc)
    if errors:
        return {"count": None, "sample": [], "problem": "Finish the rules to see who matches."}
    return {"count": counting.count(group), "sample": counting.sample(group), "problem": None}


@bp.get("/")
@login_required_page
def index():
    audiences = db.session.scalars(select(Audience).order_by(Audience.name)).all()
    members = dict(
        db.session.execute(
            select(audience_members.c.audience_id, func.count())
            .where(audience_members.c.audience_id.in_([a.id for a in audiences]))
            .group_by(audience_members.c.audience_id)
        ).all()
    )
    return render_template("audiences/index.html", audiences=audiences, members=members)


@bp.route("/new", methods=["GET", "POST"])
@login_required_page
def new():
    if request.method == "GET":
        return _editor(None, {"name": "", "match": "all", "rules": []}, {})
    return _save(None)


@bp.route("/<int:audience_id>", methods=["GET", "POST"])
@login_required_page
def edit(audience_id: int):
    audience = get_or_404(Audience, audience_id)
    if request.method == "GET":
        values = {"name": audience.name, **rules_values(audience.rule_group)}
        return _editor(audience, values, {})
    return _save(audience)


def _save(audience: Audience | None):
    values = values_from_form(request.form)
    if apply_row_action(values, request.form.get("_action", "")):
        return _editor(audience, values, {})
    errors: dict[str, list[str]] = {}
    group = rules_from_values(values, errors)
    if errors:
        return _editor(audience, values, errors, 400)
    try:
        if audience is None:
            audience = saving.create_audience(values.get("name"), group["match"], group["rules"])
            flash(f"Created the audience “{audience.name}”.")
        else:
            saving.update_audience(audience, values.get("name"), group["match"], group["rules"])
            flash("Saved.")
    except CrmError as exc:
        db.session.rollback()
        return _editor(audience, values, _page_errors(exc), 400)
    return redirect(url_for("audiences.edit", audience_id=audience.id))


@bp.post("/preview")
@login_required_page
def preview():
    """The count and sample fragment for the editor's current rules."""
    if not is_htmx():
        abort(400)
    values = values_from_form(request.form)
    return render_template("audiences/_preview.html", preview=_preview(values))


@bp.post("/<int:audience_id>/delete")
@login_required_page
def delete(audience_id: int):
    audience = get_or_404(Audience, audience_id)
    name = audience.name
    try:
        saving.delete_audience(audience)
    except CrmError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("audiences.edit", audience_id=audience_id))
    flash(f"Deleted the audience “{name}” (its contacts stay).")
    return redirect(url_for("audiences.index"))


@bp.post("/<int:audience_id>/enroll")
@login_required_page
def start_enroll(audience_id: int):
    audience = get_or_404(Audience, audience_id)
    raw = (request.form.get("workflow") or "").strip()
    try:
        job = enroll.start_enrollment(audience, int(raw) if raw.isdigit() else None, user=g.user)
    except CrmError as exc:
        db.session.rollback()
        values = {"name": audience.name, **rules_values(audience.rule_group)}
        return _editor(audience, values, {"workflow": [exc.message]}, 400)
    return redirect(url_for("audiences.enrollment", audience_id=audience.id, enrollment_id=job.id))


def _job(audience_id: int, enrollment_id: int) -> tuple[Audience, AudienceEnrollment]:
    audience = get_or_404(Audience, audience_id)
    job = get_or_404(AudienceEnrollment, enrollment_id)
    if job.audience_id != audience.id:
        abort(404)
    return audience, job


@bp.get("/<int:audience_id>/enroll/<int:enrollment_id>")
@login_required_page
def enrollment(audience_id: int, enrollment_id: int):
    audience, job = _job(audience_id, enrollment_id)
    workflow = db.session.get(Workflow, job.workflow_id)
    template = "audiences/_progress.html" if is_htmx() else "audiences/enrollment.html"
    return render_template(template, audience=audience, job=job, workflow=workflow)
