"""Executions (firm-wide and per workflow), one execution's timeline,
cancel and retry, and the dead-letter page with bulk retry.

Cancel and retry are the engine's (``app.automation.engine.operator``); this module
only loads, checks access and renders.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.auth import login_required_page
from app.automation.engine.operator import cancel_execution, retry_execution
from app.automation.engine.retry import why_not_resumable
from app.automation.engine.timeline import timelines
from app.extensions import db
from app.models import DeadLetter, Workflow, WorkflowExecution
from app.models.execution import ACTIVE_STATUSES, EXECUTION_STATUSES
from app.web.pages import (
    get_or_404,
    int_arg,
    int_list,
    is_htmx,
    local_path,
    page_or_block,
    paginate,
)

bp = Blueprint("executions", __name__)

PER_PAGE = 25


def _executions_context(workflow: Workflow | None) -> dict:
    status = request.args.get("status") or ""
    if status not in EXECUTION_STATUSES:
        status = ""
    include_tests = request.args.get("tests") == "1"
    workflow_filter = workflow.id if workflow else int_arg("workflow")
    contact_filter = int_arg("contact")
    stmt = select(WorkflowExecution)
    if contact_filter:
        stmt = stmt.where(WorkflowExecution.contact_id == contact_filter)
    if workflow_filter:
        stmt = stmt.where(WorkflowExecution.workflow_id == workflow_filter)
    if status:
        stmt = stmt.where(WorkflowExecution.status == status)
    if not include_tests:
        stmt = stmt.where(WorkflowExecution.test_mode.is_(False))
    page = paginate(
        stmt.order_by(WorkflowExecution.id.desc()),
        PER_PAGE,
        options=(joinedload(WorkflowExecution.contact), joinedload(WorkflowExecution.workflow)),
    )
    workflows = (
        []
        if workflow
        else db.session.execute(select(Workflow.id, Workflow.name).order_by(Workflow.name)).all()
    )
    return {
        "page": page,
        "workflow": workflow,
        "workflows": workflows,
        "workflow_filter": workflow_filter,
        "contact_filter": contact_filter,
        "status": status,
        "statuses": EXECUTION_STATUSES,
        "include_tests": include_tests,
    }


@bp.get("/executions")
@login_required_page
def list_executions():
    return page_or_block("executions/list.html", "results", **_executions_context(None))


@bp.get("/automation/<int:workflow_id>/executions")
@login_required_page
def workflow_executions(workflow_id: int):
    workflow = get_or_404(Workflow, workflow_id)
    return page_or_block("executions/list.html", "results", **_executions_context(workflow))


@bp.get("/executions/<int:execution_id>")
@login_required_page
def show(execution_id: int):
    execution = get_or_404(WorkflowExecution, execution_id)
    view = timelines([execution])[0]
    dead_letters = db.session.scalars(
        select(DeadLetter)
        .where(DeadLetter.execution_id == execution.id)
        .order_by(DeadLetter.id.desc())
    ).all()
    return page_or_block(
        "executions/show.html", "status", view=view, ex=execution, dead_letters=dead_letters
    )


def _after_action(execution: WorkflowExecution, message: str, ok: bool):
    if is_htmx():
        target = request.headers.get("HX-Target") or ""
        if target.removeprefix("execution-").isdigit():
            return render_template(
                "executions/_row.html", ex=execution, show_workflow=True, flash_text=message
            ), (200 if ok else 409)
        return page_or_block(
            "executions/show.html",
            "status",
            http_status=200 if ok else 409,
            view=timelines([execution])[0],
            ex=execution,
            dead_letters=[],
            flash_text=message,
        )
    flash(message, "info" if ok else "error")
    return redirect(_back(execution))


def _back(execution: WorkflowExecution) -> str:
    """Return to the page the action came from, when it is one of ours."""
    return local_path(
        request.form.get("next"), url_for("executions.show", execution_id=execution.id)
    )


@bp.post("/executions/<int:execution_id>/cancel")
@login_required_page
def cancel(execution_id: int):
    execution = get_or_404(WorkflowExecution, execution_id)
    if execution.status not in ACTIVE_STATUSES:
        return _after_action(
            execution, f"Execution #{execution.id} is {execution.status}: nothing to cancel.", False
        )
    changed = cancel_execution(execution, g.user)
    message = (
        f"Canceled execution #{execution.id}."
        if changed
        else f"Execution #{execution.id} finished before it could be canceled."
    )
    return _after_action(execution, message, changed)


@bp.post("/executions/<int:execution_id>/retry")
@login_required_page
def retry(execution_id: int):
    execution = get_or_404(WorkflowExecution, execution_id)
    if execution.status != "failed":
        return _after_action(
            execution,
            f"Only a failed execution can be retried (#{execution.id} is {execution.status}).",
            False,
        )

    changed = retry_execution(execution, g.user)
    message = (
        f"Retrying execution #{execution.id} at step {execution.current_node}."
        if changed
        else f"Execution #{execution.id} could not be retried: {why_not_resumable(execution)}."
    )
    return _after_action(execution, message, changed)


@bp.get("/dead-letters")
@login_required_page
def dead_letters():
    show_all = request.args.get("show") == "all"
    stmt = select(DeadLetter)
    if not show_all:
        stmt = stmt.where(DeadLetter.resolved_at.is_(None))
    page = paginate(
        stmt.order_by(DeadLetter.id.desc()),
        PER_PAGE,
        options=(
            joinedload(DeadLetter.execution).joinedload(WorkflowExecution.contact),
            joinedload(DeadLetter.execution).joinedload(WorkflowExecution.workflow),
        ),
    )
    return page_or_block("executions/dead_letters.html", "results", page=page, show_all=show_all)


@bp.post("/dead-letters/retry")
@login_required_page
def retry_dead_letters():
    """Retry the chosen dead letters' executions (each one still failed)."""
    ids = int_list(request.form.getlist("ids"))
    if not ids:
        flash("Choose at least one dead letter to retry.", "error")
        return redirect(url_for("executions.dead_letters"), code=303)
    letters = db.session.scalars(
        select(DeadLetter).where(DeadLetter.id.in_(ids)).options(joinedload(DeadLetter.execution))
    ).all()
    executions = {letter.execution.id: letter.execution for letter in letters if letter.execution}
    retried = skipped = 0
    for execution in executions.values():
        if execution.status == "failed" and retry_execution(execution, g.user):
            retried += 1
        else:
            skipped += 1
    parts = [f"Retried {retried} execution{'s' if retried != 1 else ''}."]
    if skipped:
        parts.append(
            f"{skipped} left as they are (no longer failed, or the contact is in the "
            "workflow again)."
        )
    flash(" ".join(parts), "info" if retried else "error")
    return redirect(url_for("executions.dead_letters"))
