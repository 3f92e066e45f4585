"""The workflow list (/automation): find, create, rename, duplicate,
delete, activate and pause workflows.

Row actions answer HTMX with the changed row (or nothing, for a delete);
without JavaScript the same forms post and redirect back to the list.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from app.auth import login_required_page
from app.automation.graph.validation import WorkflowInvalid
from app.automation.lifecycle.publishing import ApprovalRequired, pause_workflow
from app.automation.lifecycle.workflow_ops import (
    WorkflowOpError,
    activate_and_enroll,
    create_workflow,
    delete_workflow,
    duplicate_workflow,
    list_figures,
    rename_workflow,
)
from app.automation.triggers.registry import TRIGGER_TYPES
from app.extensions import db
from app.models import Workflow
from app.models.workflow import WORKFLOW_STATUSES
from app.web.pages import get_or_404, is_htmx, page_or_block, paginate

bp = Blueprint("workflows", __name__, url_prefix="/automation")

PER_PAGE = 20


def _list_context(**extra) -> dict:
    query = (request.args.get("q") or "").strip()[:200]
    status = request.args.get("status") or ""
    if status not in WORKFLOW_STATUSES:
        status = ""
    stmt = select(Workflow)
    if query:
        # Escape LIKE wildcards: a search for "50%" means the text "50%".
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Workflow.name.ilike(f"%{escaped}%", escape="\\"))
    if status:
        stmt = stmt.where(Workflow.status == status)
    page = paginate(stmt.order_by(Workflow.updated_at.desc(), Workflow.id.desc()), PER_PAGE)
    context = {
        "page": page,
        "figures": list_figures([wf.id for wf in page.items]),
        "q": query,
        "status": status,
        "statuses": WORKFLOW_STATUSES,
        "trigger_types": TRIGGER_TYPES,
        "form": {"name": "", "description": ""},
        "errors": {},
        "problems": None,
    }
    context.update(extra)
    return context


@bp.get("", strict_slashes=False)
@login_required_page
def list_workflows():
    return page_or_block("workflows/list.html", "results", **_list_context())


@bp.post("", strict_slashes=False)
@login_required_page
def create():
    form = {
        "name": request.form.get("name", ""),
        "description": request.form.get("description", ""),
    }
    try:
        workflow = create_workflow(form["name"], form["description"], g.user)
    except WorkflowOpError as exc:
        db.session.rollback()
        context = _list_context(form=form, errors={exc.field or "name": exc.message})
        context["show_create"] = True
        return render_template("workflows/list.html", **context), 400
    flash(f"Created “{workflow.name}”. Add a trigger and steps, then activate it.")
    return _redirect(f"/automation/builder/{workflow.id}")


def _redirect(location: str):
    """A redirect both a browser and HTMX follow (HTMX needs HX-Redirect)."""
    if is_htmx():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location)


def _row(workflow: Workflow, status: int = 200, **extra):
    context = {
        "wf": workflow,
        "fig": list_figures([workflow.id])[workflow.id],
        "trigger_types": TRIGGER_TYPES,
        **extra,
    }
    return render_template("workflows/_row.html", **context), status


@bp.get("/<int:workflow_id>/row")
@login_required_page
def row(workflow_id: int):
    """One row of the list (HTMX: cancel an inline rename); the list otherwise."""
    workflow = get_or_404(Workflow, workflow_id)
    if not is_htmx():
        return redirect(url_for("workflows.list_workflows"))
    return _row(workflow)


@bp.route("/<int:workflow_id>/rename", methods=["GET", "POST"])
@login_required_page
def rename(workflow_id: int):
    workflow = get_or_404(Workflow, workflow_id)
    error = None
    name = workflow.name
    if request.method == "POST":
        name = request.form.get("name", "")
        try:
            rename_workflow(workflow, name, g.user)
        except WorkflowOpError as exc:
            db.session.rollback()
            error = exc.message
        else:
            if is_htmx():
                return _row(workflow)
            flash(f"Renamed to “{workflow.name}”.")
            return redirect(url_for("workflows.list_workflows"))
    status = 400 if error else 200
    if is_htmx():
        return _row(workflow, status, editing=True, name_value=name, error=error)
    return render_template(
        "workflows/rename.html", wf=workflow, name_value=name, error=error
    ), status


@bp.route("/<int:workflow_id>/delete", methods=["GET", "POST"])
@login_required_page
def delete(workflow_id: int):
    workflow = get_or_404(Workflow, workflow_id)
    if request.method == "GET":
        return render_template("workflows/delete.html", wf=workflow, error=None)
    name = workflow.name
    try:
        delete_workflow(workflow, g.user)
    except WorkflowOpError as exc:
        db.session.rollback()
        if is_htmx():
            return _message(exc.message, 409)
        return render_template("workflows/delete.html", wf=workflow, error=exc.message), 409
    if is_htmx():
        # An empty 200 swaps the row away.
        return ""
    flash(f"Deleted “{name}”.")
    return redirect(url_for("workflows.list_workflows"))


@bp.post("/<int:workflow_id>/duplicate")
@login_required_page
def duplicate(workflow_id: int):
    workflow = get_or_404(Workflow, workflow_id)
    copy = duplicate_workflow(workflow, g.user)
    flash(f"Duplicated as “{copy.name}” (a draft).")
    return _redirect(url_for("workflows.list_workflows"))


@bp.post("/<int:workflow_id>/activate")
@login_required_page
def activate(workflow_id: int):
    workflow = get_or_404(Workflow, workflow_id)
    try:
        version, enrolled = activate_and_enroll(workflow, g.user)
    except ApprovalRequired:
        # The approval request is already saved; nothing else changes.
        db.session.rollback()
        return _notice(
            f"“{workflow.name}” was sent to an admin for approval: "
            "it goes live when an admin approves it.",
            "info",
            202,
        )
    except WorkflowInvalid as exc:
        db.session.rollback()
        return _problems(workflow, exc.problems)
    except ValueError as exc:  # e.g. an archived workflow
        db.session.rollback()
        return _notice(str(exc).capitalize() + ".", "error", 409)
    message = f"“{workflow.name}” is active (version {version.number})."
    if enrolled:
        message += f" {enrolled} existing contact{'s' if enrolled != 1 else ''} enrolled."
    if is_htmx():
        return _row(workflow, flash_text=message if enrolled else None)
    flash(message)
    return redirect(url_for("workflows.list_workflows"))


@bp.post("/<int:workflow_id>/pause")
@login_required_page
def pause(workflow_id: int):
    workflow = get_or_404(Workflow, workflow_id)
    try:
        pause_workflow(workflow, g.user)
        db.session.commit()
    except ValueError as exc:
        db.session.rollback()
        message = str(exc).capitalize() + "."
        if is_htmx():
            return _message(message, 409)
        flash(message, "error")
        return redirect(url_for("workflows.list_workflows"))
    if is_htmx():
        return _row(workflow)
    flash(f"“{workflow.name}” is paused: no new contacts enter; those inside wait.")
    return redirect(url_for("workflows.list_workflows"))


def _message(text: str, status: int):
    """An error shown above the list instead of in the row."""
    response = make_response(
        render_template("workflows/_message.html", message=text, category="error"), status
    )
    response.headers["HX-Retarget"] = "#list-messages"
    response.headers["HX-Reswap"] = "innerHTML"
    return response


def _notice(text: str, category: str, status: int):
    """A message above the list (HTMX) or a flash on the list (no JS)."""
    if is_htmx():
        response = make_response(
            render_template("workflows/_message.html", message=text, category=category), status
        )
        response.headers["HX-Retarget"] = "#list-messages"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    flash(text, category)
    return redirect(url_for("workflows.list_workflows"))


def _problems(workflow: Workflow, problems: list[dict]):
    """Activation refused: each problem, linked to its node in the builder."""
    if is_htmx():
        response = make_response(
            render_template("workflows/_problems.html", wf=workflow, problems=problems), 422
        )
        response.headers["HX-Retarget"] = "#list-messages"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    context = _list_context(problems={"wf": workflow, "items": problems})
    return render_template("workflows/list.html", **context), 422
