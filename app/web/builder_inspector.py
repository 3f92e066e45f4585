"""The node inspector: a form per node type, saved only when valid.

``POST .../nodes/<node_id>`` carries ``_action``: ``save`` validates the
configuration with the registry (schema, templates, the type's own checks:
graph/node_checks.py) and stores it, then shows the type's warnings (a
webhook host that does not resolve now) above the saved form;
row actions (``add_rule:tag``, ``remove_variant:1``...) only redraw the form
with the typed values, so the rule builder needs no JavaScript.
"""

from __future__ import annotations

from typing import Any

from flask import g, render_template, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.auth import login_required_page
from app.automation.engine.context import render_context
from app.automation.graph.editing import GraphError, configuration_problems, update_node
from app.automation.graph.node_checks import node_warnings
from app.automation.nodes.registry import UnknownNodeType, get_node_type
from app.automation.templating.render import TemplateError, render_isolated
from app.extensions import db
from app.models import Audience, Contact, ContactList, Tag, Topic, User, Workflow, WorkflowNode
from app.tenancy import scoped_get
from app.web.builder_common import (
    back_to_builder,
    bp,
    is_htmx,
    load_node,
    load_workflow,
    render_panel,
)
from app.web.builder_forms import (
    apply_row_action,
    config_from_values,
    error_summary,
    unshown_keys,
    values_from_config,
    values_from_form,
    window_preview,
)

MAX_LABEL = 200
PICKER_LIMIT = 500
SAMPLE_CONTACT = {
    "id": 0,
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "score": 42,
    "custom_fields": {"plan": "pro"},
}
MERGE_FIELDS = (
    "contact.first_name",
    "contact.last_name",
    "contact.full_name",
    "contact.email",
    "contact.phone",
    "contact.score",
    "contact.custom.<key>",
    "deal.title",
    "deal.value",
    "deal.stage",
    "workflow.name",
    "context.<key>",
)


def pickers(workflow: Workflow) -> dict[str, Any]:
    """The firm's tags, lists, users and contacts for the form's pickers."""
    return {
        "tags": db.session.scalars(select(Tag.name).order_by(Tag.name).limit(PICKER_LIMIT)).all(),
        "lists": db.session.execute(
            select(ContactList.id, ContactList.name).order_by(ContactList.name).limit(PICKER_LIMIT)
        ).all(),
        "users": db.session.scalars(
            select(User.email).where(User.role != "portal").order_by(User.email)
        ).all(),
        "contacts": db.session.execute(
            select(Contact.id, Contact.email).order_by(Contact.id.desc()).limit(50)
        ).all(),
        # (node_id, what the marketer named the step): pickers show names.
        "email_nodes": [
            (n.node_id, n.label or n.node_id) for n in workflow.nodes if n.node_type == "send_email"
        ],
        # A split's metric choices (builder_forms._experiment_read reads "goal:<id>").
        "goal_metrics": [
            (f"goal:{n.node_id}", f"Goal: {n.label or n.node_id}")
            for n in workflow.nodes
            if n.node_type == "goal"
        ],
        # Conditions may test membership ({"audience": id, "op": "in"}).
        "audiences": db.session.execute(
            select(Audience.id, Audience.name).order_by(Audience.name).limit(PICKER_LIMIT)
        ).all(),
        "topics": [
            (topic_id, f"{name} ({kind})")
            for topic_id, name, kind in db.session.execute(
                select(Topic.id, Topic.name, Topic.kind).order_by(Topic.kind, Topic.name)
            )
        ],
    }


def inspector_context(
    workflow: Workflow,
    node: WorkflowNode,
    values: dict | None = None,
    errors: dict | None = None,
    saved: bool = False,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    try:
        kind = get_node_type(node.node_type)
    except UnknownNodeType:
        kind = None
    if values is None:
        values = values_from_config(node.node_type, node.configuration)
        values["label"] = node.label
        values["node_id"] = node.node_id
    errors = errors or {}
    return {
        "node": node,
        "kind": kind,
        "values": values,
        "errors": errors,
        "summary": error_summary(errors),
        "saved": saved,
        "warnings": warnings or [],
        "pickers": pickers(workflow),
        "merge_fields": MERGE_FIELDS,
        "window_preview": window_preview,
        "partial": "nodes/_form.html" if kind else None,
    }


@bp.get("/<int:workflow_id>/nodes/<node_id>")
@login_required_page
def inspector(workflow_id: int, node_id: str):
    workflow = load_workflow(workflow_id)
    node = load_node(workflow, node_id)
    return render_panel(workflow, "builder/_inspector.html", **inspector_context(workflow, node))


@bp.post("/<int:workflow_id>/nodes/<node_id>")
@login_required_page
def save_node(workflow_id: int, node_id: str):
    workflow = load_workflow(workflow_id)
    node = load_node(workflow, node_id)
    values = values_from_form(request.form)
    action = request.form.get("_action", "save")
    if action != "save":
        apply_row_action(values, action)
        return render_panel(
            workflow, "builder/_inspector.html", **inspector_context(workflow, node, values)
        )

    config, errors = config_from_values(node.node_type, values)
    config = {**unshown_keys(node.node_type, node.configuration), **config}
    # The schema, template syntax and the type's own checks: the domain's
    # (app/automation/graph/editing.py), shown with the form's own errors.
    problems = configuration_problems(node.node_type, config, schema_errors=set(errors))
    for field, messages in problems.items():
        errors.setdefault(field, []).extend(messages)
    label = (values.get("label") or "").strip()
    if not label:
        errors.setdefault("label", []).append("give the step a name")
    elif len(label) > MAX_LABEL:
        errors.setdefault("label", []).append(f"at most {MAX_LABEL} characters")
    if not errors:
        changes = {
            "configuration": config,
            "label": label,
            "node_id": values.get("node_id") or node.node_id,
        }
        try:
            update_node(workflow, node, changes, user=g.get("user"))
        except GraphError as exc:
            errors.setdefault(exc.field, []).append(str(exc))
    if errors:
        db.session.rollback()
        node = load_node(workflow, node_id)
        context = inspector_context(workflow, node, values, errors)
        return render_panel(workflow, "builder/_inspector.html", status=422, **context)

    try:
        db.session.commit()
    except IntegrityError:
        # The new step id was taken by a concurrent change.
        db.session.rollback()
        node = load_node(workflow, node_id)
        errors = {"node_id": ["this step id was just taken; choose another"]}
        context = inspector_context(workflow, node, values, errors)
        return render_panel(workflow, "builder/_inspector.html", status=409, **context)
    # After the commit: a warning may take a DNS lookup.
    warnings = error_summary(node_warnings(node.node_type, config))
    if not is_htmx():
        message = " ".join([f"Saved {label}.", *warnings])
        return back_to_builder(workflow, message, "warning" if warnings else "info")
    context = inspector_context(workflow, node, saved=True, warnings=warnings)
    body, status = render_panel(workflow, "builder/_inspector.html", **context)
    return body, status, {"HX-Trigger": "graph-changed"}


@bp.post("/<int:workflow_id>/nodes/<node_id>/preview")
@login_required_page
def preview(workflow_id: int, node_id: str):
    """The message as the chosen (or a sample) contact would get it."""
    workflow = load_workflow(workflow_id)
    node = load_node(workflow, node_id)
    if not is_htmx():
        return back_to_builder(workflow)
    values = values_from_form(request.form)
    contact: Any = SAMPLE_CONTACT
    raw_id = (values.get("preview_contact") or "").strip()
    if raw_id.isdigit():
        contact = scoped_get(Contact, int(raw_id)) or SAMPLE_CONTACT
    rendered = render_preview(workflow, node.node_type, values, contact)
    return render_template("builder/_preview.html", rendered=rendered, contact=contact)


def render_preview(workflow: Workflow, node_type: str, values: dict, contact: Any) -> list[dict]:
    """[{"label", "text"|"html"|"error"}] for each templated field of the node."""
    context = render_context(contact, workflow)
    try:
        fields = get_node_type(node_type).previewed
    except UnknownNodeType:
        fields = ()
    shown = [(key, label, html) for key, label, html in fields if (values.get(key) or "").strip()]
    # In a forked child with a memory and CPU limit (templating/isolation.py).
    outputs = render_isolated([(values[key], context, html) for key, _, html in shown])
    rendered = []
    for (_, label, html), output in zip(shown, outputs, strict=True):
        if isinstance(output, TemplateError):
            rendered.append({"label": label, "error": str(output)})
        else:
            rendered.append({"label": label, "html" if html else "text": output})
    return rendered
