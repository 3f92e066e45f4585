"""What every builder view shares: the blueprint, loading, page rendering.

The builder is one page (``/automation/builder/<id>``) whose parts — the
canvas, the side panel (inspector, triggers, settings, test run), the
problems list and the lifecycle bar — are also served as HTMX fragments.
A fragment URL opened without ``HX-Request`` renders the whole page with
that part in place, so every URL survives a reload.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from app.automation.graph.definition import definition_of
from app.automation.graph.edit_history import history_state
from app.automation.graph.editing import GraphError
from app.automation.graph.validation import validate_definition
from app.automation.lifecycle.publishing import has_unpublished_changes
from app.automation.nodes.registry import all_node_types
from app.models import Workflow, WorkflowNode
from app.tenancy import scoped_get
from app.web.builder_geometry import drawing
from app.web.builder_svg import graph_svg

bp = Blueprint("builder", __name__, url_prefix="/automation/builder")

FAMILY_TITLES = OrderedDict([("action", "Actions"), ("control", "Flow control"), ("goal", "Goals")])


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def load_workflow(workflow_id: int) -> Workflow:
    """The workflow of the current firm, or 404 (tenancy filters the query).

    A SELECT rather than ``session.get``: the identity map would hand back
    a row loaded earlier in the same session without asking the database,
    and so without the firm filter."""
    workflow = scoped_get(Workflow, workflow_id)
    if workflow is None:
        abort(404)
    return workflow


def load_node(workflow: Workflow, node_id: str) -> WorkflowNode:
    node = workflow.node_by_key(node_id)
    if node is None:
        abort(404)
    return node


def payload() -> dict[str, Any]:
    """JSON body from canvas.js, or form fields from a plain form."""
    data = request.get_json(silent=True)
    if isinstance(data, dict):
        return data
    return request.form.to_dict()


def number(value: Any, field: str) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise GraphError(f"{field} must be a number", field) from None
    if result != result or result in (float("inf"), float("-inf")):
        raise GraphError(f"{field} must be a finite number", field)
    return result


def palette() -> list[tuple[str, list]]:
    groups: OrderedDict[str, list] = OrderedDict((title, []) for title in FAMILY_TITLES.values())
    for kind in all_node_types():
        groups.setdefault(FAMILY_TITLES.get(kind.family, kind.family.title()), []).append(kind)
    return [(title, kinds) for title, kinds in groups.items() if kinds]


def graph_context(workflow: Workflow) -> dict[str, Any]:
    # The definition is built once per request: validation and the
    # unpublished-changes check both read it.
    definition = definition_of(workflow)
    problems = validate_definition(definition)
    drawn = drawing(workflow, problems)
    return {
        "workflow": workflow,
        "definition": definition,
        "problems": problems,
        "general_problems": [p for p in problems if not p.get("node")],
        # One lookup per problem (a scan of the nodes each was quadratic).
        "node_labels": {node.node_id: node.label for node in workflow.nodes},
        "drawing": drawn,
        "graph_svg": graph_svg(drawn),
        "history": history_state(workflow),
    }


def page_context(workflow: Workflow, **extra: Any) -> dict[str, Any]:
    context = graph_context(workflow)
    context.update(
        palette=palette(),
        viewport=(workflow.canvas_data or {}).get("viewport") or {},
        selected=request.args.get("node", ""),
        unpublished=_unpublished(workflow, context["definition"]),
        panel_template=None,
    )
    context.update(extra)
    return context


def _unpublished(workflow: Workflow, definition: dict) -> bool:
    return has_unpublished_changes(workflow, definition)


def render_panel(workflow: Workflow, template: str, status: int = 200, **context: Any):
    """A side-panel fragment for HTMX, or the page with that panel open."""
    if is_htmx():
        return render_template(template, workflow=workflow, **context), status
    return (
        render_template(
            "builder/page.html", **page_context(workflow, panel_template=template, **context)
        ),
        status,
    )


def back_to_builder(workflow: Workflow, message: str | None = None, category: str = "info"):
    """After a plain (non-HTMX) form post: show the page again."""
    if message:
        flash(message, category)
    return redirect(url_for("builder.builder_page", workflow_id=workflow.id))


def acting_user():
    return g.get("user")
