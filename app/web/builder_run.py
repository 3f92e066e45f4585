"""Watching and trying a workflow from the builder: live counts per node,
the analytics overlay, and test runs (nothing leaves; every step shows what
it would have done and the path lights up on the canvas)."""

from __future__ import annotations

from flask import render_template, request
from sqlalchemy import or_, select

from app.auth import login_required_page
from app.automation.analytics import AnalyticsCalculator, node_live_counts
from app.automation.engine.test_runs import test_run
from app.automation.graph.definition import definition_of
from app.automation.graph.validation import validate_definition
from app.extensions import db
from app.models import Contact
from app.tenancy import scoped_get
from app.web.builder_common import (
    acting_user,
    back_to_builder,
    bp,
    is_htmx,
    load_workflow,
    render_panel,
)

CONTACT_CHOICES = 50


@bp.get("/<int:workflow_id>/counts")
@login_required_page
def live_counts(workflow_id: int):
    """Polled every 5 s while the workflow is active; canvas.js copies the
    numbers onto the nodes."""
    workflow = load_workflow(workflow_id)
    if not is_htmx():
        return back_to_builder(workflow)
    counts = node_live_counts(workflow)
    labels = {node.node_id: node.label or node.node_id for node in workflow.nodes}
    return render_template("builder/_counts.html", workflow=workflow, counts=counts, labels=labels)


@bp.get("/<int:workflow_id>/overlay")
@login_required_page
def overlay(workflow_id: int):
    """Visits, where contacts ended or dropped out, and transitions over the
    workflow's history."""
    workflow = load_workflow(workflow_id)
    if not is_htmx():
        return back_to_builder(workflow)
    data = AnalyticsCalculator.get_canvas_overlay(workflow)
    return render_template("builder/_overlay.html", workflow=workflow, data=data)


def _contacts(query: str):
    stmt = select(Contact).order_by(Contact.id.desc()).limit(CONTACT_CHOICES)
    if query:
        like = f"%{query.lower()}%"
        stmt = stmt.where(
            or_(
                Contact.email.ilike(like),
                Contact.first_name.ilike(like),
                Contact.last_name.ilike(like),
            )
        )
    return db.session.scalars(stmt).all()


@bp.get("/<int:workflow_id>/test-run")
@login_required_page
def test_run_panel(workflow_id: int):
    workflow = load_workflow(workflow_id)
    query = request.args.get("q", "").strip()[:200]
    return render_panel(
        workflow, "builder/_test_run.html", contacts=_contacts(query), query=query, result=None
    )


@bp.post("/<int:workflow_id>/test-run")
@login_required_page
def run_test(workflow_id: int):
    workflow = load_workflow(workflow_id)
    raw = request.form.get("contact_id", "")
    contact = scoped_get(Contact, int(raw)) if raw.isdigit() else None
    error = None
    execution = None
    if contact is None:
        error = "Choose a contact to run the workflow for."
    else:
        # A test run needs a runnable graph, not a trigger: it enrolls directly.
        problems = validate_definition(definition_of(workflow), require_trigger=False)
        if problems:
            error = "Fix the problems on the canvas first: " + "; ".join(
                p["message"] for p in problems[:3]
            )
        else:
            try:
                execution = test_run(workflow, contact, acting_user())
            except ValueError as exc:
                db.session.rollback()
                error = str(exc)
    labels = {node.node_id: node.label or node.node_id for node in workflow.nodes}
    return render_panel(
        workflow,
        "builder/_test_run.html",
        status=422 if error else 200,
        contacts=_contacts(""),
        query="",
        chosen=contact.id if contact else None,
        error=error,
        result=execution,
        labels=labels,
    )
