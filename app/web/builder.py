"""The visual builder (/automation/builder/<id>): page, canvas edits, settings,
activation. Inspector, triggers and test-run views live in ``builder_*.py``
modules that register on the same blueprint.

Canvas edits (add, move, connect, delete, paste, undo) are in
``builder_edits.py``.
"""

from __future__ import annotations

from flask import jsonify, render_template, request

from app.auth import login_required_page
from app.automation.delivery import windows
from app.automation.graph.editing import GraphError
from app.automation.graph.validation import WorkflowInvalid
from app.automation.lifecycle.publishing import (
    ApprovalRequired,
    activate_workflow,
    has_unpublished_changes,
    pause_workflow,
)
from app.automation.lifecycle.workflow_ops import (
    WorkflowOpError,
    clean_description,
    clean_name,
    update_workflow,
)
from app.automation.triggers.helpers import enroll_existing
from app.extensions import db

# The other builder views register on the same blueprint (builder_common.bp).
from app.web import (  # noqa: F401
    builder_edits,
    builder_forecast,
    builder_run,
    builder_test_send,
    builder_triggers,
)
from app.web.builder_common import (
    acting_user,
    back_to_builder,
    bp,
    graph_context,
    is_htmx,
    load_workflow,
    number,
    page_context,
    payload,
    render_panel,
)
from app.web.builder_inspector import inspector_context  # and its views


def _error(exc: GraphError, status: int = 422):
    return jsonify({"error": {"message": str(exc), "field": exc.field}}), status


@bp.get("/<int:workflow_id>")
@login_required_page
def builder_page(workflow_id: int):
    workflow = load_workflow(workflow_id)
    selected = request.args.get("node", "")
    extra = {}
    if selected and workflow.node_by_key(selected) is not None:
        extra = inspector_context(workflow, workflow.node_by_key(selected))
        extra["panel_template"] = "builder/_inspector.html"
    return render_template("builder/page.html", **page_context(workflow, **extra))


@bp.get("/<int:workflow_id>/graph")
@login_required_page
def graph_fragment(workflow_id: int):
    workflow = load_workflow(workflow_id)
    if not is_htmx():
        return back_to_builder(workflow)
    return render_template("builder/_graph.html", **graph_context(workflow))


@bp.get("/<int:workflow_id>/problems")
@login_required_page
def problems_fragment(workflow_id: int):
    workflow = load_workflow(workflow_id)
    if not is_htmx():
        return back_to_builder(workflow)
    return render_template("builder/_problems.html", **graph_context(workflow))


@bp.post("/<int:workflow_id>/viewport")
@login_required_page
def save_viewport(workflow_id: int):
    """Pan and zoom are part of the canvas a reload shows."""
    workflow = load_workflow(workflow_id)
    data = payload()
    try:
        viewport = {
            "x": max(-1e6, min(1e6, number(data.get("x", 0), "x"))),
            "y": max(-1e6, min(1e6, number(data.get("y", 0), "y"))),
            "k": max(0.2, min(3.0, number(data.get("k", 1), "k"))),
        }
    except GraphError as exc:
        return _error(exc)
    workflow.canvas_data = {**(workflow.canvas_data or {}), "viewport": viewport}
    db.session.commit()
    return jsonify(viewport)


# -- settings ---------------------------------------------------------------


@bp.route("/<int:workflow_id>/settings", methods=["GET", "POST"])
@login_required_page
def settings_panel(workflow_id: int):
    workflow = load_workflow(workflow_id)
    errors: dict[str, str] = {}
    saved = False
    if request.method == "POST":
        # The same name rules as the workflow list and the API.
        try:
            name = clean_name(request.form.get("name"))
        except WorkflowOpError as exc:
            errors["name"] = exc.message
        try:
            description = clean_description(request.form.get("description"))
        except WorkflowOpError as exc:
            errors["description"] = exc.message
        try:
            send_window = windows.window_from_form(request.form)
        except windows.WindowError as exc:
            errors[f"window_{exc.field}"] = exc.message
        priority = request.form.get("priority", str(workflow.priority or 5))
        if priority not in [str(n) for n in range(1, 11)]:
            errors["priority"] = "A priority from 1 (highest) to 10."
        if not errors:
            changes = {
                "name": name,
                "description": description,
                "send_window": send_window,
                "priority": int(priority),
            }
            for flag in ("allow_reentry", "exit_on_goal", "enroll_existing"):
                changes[flag] = request.form.get(flag) in ("on", "true", "1")
            # The API's update too (app/automation/lifecycle/workflow_ops.py).
            update_workflow(workflow, changes, user=acting_user())
            saved = True
            if not is_htmx():
                return back_to_builder(workflow, "Settings saved.")
    form = request.form if request.method == "POST" else None
    status = 422 if errors else 200
    response = render_panel(
        workflow,
        "builder/_settings.html",
        status=status,
        form=form,
        errors=errors,
        saved=saved,
        window_preview=windows.describe(windows.parse_window(workflow.send_window)),
        window_days=windows.DAYS,
    )
    if saved:
        # The canvas redraws: the workflow's name, and Undo now offers this.
        body, code = response
        return body, code, {"HX-Trigger": "graph-changed"}
    return response


# -- lifecycle --------------------------------------------------------------


def _lifecycle(workflow, problems=None, message=None, status=200, approval=False):
    if not is_htmx():
        if problems:
            return back_to_builder(
                workflow, "The workflow cannot be activated yet: fix the problems shown.", "error"
            )
        return back_to_builder(workflow, message)
    body = render_template(
        "builder/_lifecycle.html",
        unpublished=has_unpublished_changes(workflow),
        workflow=workflow,
        activation_problems=problems,
        message=message,
        approval=approval,
    )
    return body, status, {"HX-Trigger": "graph-changed"}


@bp.get("/<int:workflow_id>/lifecycle")
@login_required_page
def lifecycle_fragment(workflow_id: int):
    workflow = load_workflow(workflow_id)
    if not is_htmx():
        return back_to_builder(workflow)
    return render_template(
        "builder/_lifecycle.html", workflow=workflow, unpublished=has_unpublished_changes(workflow)
    )


@bp.get("/<int:workflow_id>/unpublished")
@login_required_page
def unpublished_fragment(workflow_id: int):
    workflow = load_workflow(workflow_id)
    if not is_htmx():
        return back_to_builder(workflow)
    return render_template(
        "builder/_unpublished.html",
        workflow=workflow,
        unpublished=has_unpublished_changes(workflow),
    )


@bp.post("/<int:workflow_id>/activate")
@login_required_page
def activate(workflow_id: int):
    workflow = load_workflow(workflow_id)
    try:
        version = activate_workflow(workflow, acting_user())
    except WorkflowInvalid as exc:
        db.session.rollback()
        return _lifecycle(workflow, problems=exc.problems, status=422)
    except ApprovalRequired:
        db.session.rollback()
        return _lifecycle(
            workflow,
            message="In this firm an admin approves activations.",
            approval=True,
            status=409,
        )
    except ValueError as exc:
        db.session.rollback()
        return _lifecycle(workflow, message=str(exc), status=409)
    db.session.commit()
    message = f"Active (version {version.number})."
    if workflow.enroll_existing:
        message += f" {_enroll_existing(workflow)} existing contacts enrolled."
    return _lifecycle(workflow, message=message)


def _enroll_existing(workflow) -> int:
    """The "enroll existing contacts on activation" setting. Enrollment is
    idempotent per version, so activating again enrolls nobody twice."""
    return enroll_existing(workflow)


@bp.post("/<int:workflow_id>/pause")
@login_required_page
def pause(workflow_id: int):
    workflow = load_workflow(workflow_id)
    try:
        pause_workflow(workflow, acting_user())
    except ValueError as exc:
        db.session.rollback()
        return _lifecycle(workflow, message=str(exc), status=409)
    db.session.commit()
    return _lifecycle(workflow, message="Paused: no new contacts enter.")
