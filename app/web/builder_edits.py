"""Canvas edits: add (free, after a step, on a connection), move, connect,
disconnect, delete, copy, paste, and undo/redo of all of them.

They come from ``static/canvas/`` as JSON with the CSRF header and answer
JSON (ids, or an error naming the field); the script then reloads the
``graph`` fragment, so the server stays the one source of truth for what
is drawn. The edits are the domain's (``app/automation/graph/editing.py``,
the same the API calls): they check, audit and record for undo in the
transaction that makes the change; these views commit.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from app.auth import login_required_page
from app.automation.graph import editing
from app.automation.graph.edit_history import history_state, redo, undo
from app.automation.graph.editing import GraphError, clamp, name_of, recorded
from app.extensions import db
from app.models.audit import record
from app.web.builder_common import (
    acting_user,
    back_to_builder,
    bp,
    is_htmx,
    load_node,
    load_workflow,
    number,
    payload,
)
from app.web.builder_compose import copy_document, insert_after, insert_on_edge, paste_document

MAX_BATCH = 500
_RACE = "another change came first; try again"


def _error(exc: GraphError, status: int | None = None):
    return jsonify({"error": {"message": str(exc), "field": exc.field}}), status or exc.status


def _changed(workflow, body: dict | None = None, status: int = 200) -> Response:
    """A JSON answer (with what Undo/Redo now do) that tells HTMX listeners
    the graph changed."""
    response = jsonify({**(body or {}), "history": history_state(workflow)})
    response.status_code = status
    response.headers["HX-Trigger"] = "graph-changed"
    return response


def _commit() -> bool:
    """Commit the edit (recorded by the domain); False when a concurrent change won."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


def _node_ids(data: dict[str, Any], field: str = "nodes") -> list[str]:
    ids = data.get(field)
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise GraphError("give a list of step ids", field)
    if len(ids) > MAX_BATCH:
        raise GraphError(f"at most {MAX_BATCH} steps at once", field)
    return ids


@bp.post("/<int:workflow_id>/nodes")
@login_required_page
def create_node(workflow_id: int):
    """A new step: where it was dropped (x, y), after a step (``after``,
    optional ``port``), or spliced into a connection (``edge``)."""
    workflow = load_workflow(workflow_id)
    data = payload()
    node_type = str(data.get("node_type", ""))
    try:
        if data.get("edge") not in (None, ""):
            edge_id = int(number(data["edge"], "edge"))
            edge = next((e for e in workflow.edges if e.id == edge_id), None)
            if edge is None:
                raise GraphError("that connection no longer exists", "edge")
            node = _composed(workflow, lambda: insert_on_edge(workflow, node_type, edge))
        elif data.get("after"):
            port = data.get("port") or None
            after, port = str(data["after"]), port and str(port)
            node = _composed(workflow, lambda: insert_after(workflow, node_type, after, port))
        else:
            x = clamp(number(data.get("x", 80), "x"))
            y = clamp(number(data.get("y", 80), "y"))
            node = editing.add_node(workflow, node_type, x, y, user=acting_user())
    except IntegrityError:
        db.session.rollback()
        return _error(GraphError(_RACE, "node_type"), 409)
    except GraphError as exc:
        db.session.rollback()
        if not is_htmx():
            return back_to_builder(workflow, str(exc), "error")
        return _error(exc)
    if not _commit():
        return _error(GraphError(_RACE, "node_type"), 409)
    if not is_htmx():
        return back_to_builder(workflow, f"Added {node.label}.")
    body = {"node_id": node.node_id, "x": node.position_x, "y": node.position_y}
    return _changed(workflow, body, 201)


def _composed(workflow, insert):
    """A step added and wired in one edit (after a step, on a connection):
    one undo entry and the audit entry of any added step."""
    with recorded(workflow, user=acting_user()) as edit:
        node = insert()
        edit.text = f"add {name_of(node)}"
        editing.node_added(workflow, node)
    return node


@bp.post("/<int:workflow_id>/nodes/<node_id>/position")
@login_required_page
def save_position(workflow_id: int, node_id: str):
    workflow = load_workflow(workflow_id)
    node = load_node(workflow, node_id)
    data = payload()
    try:
        point = (number(data.get("x"), "x"), number(data.get("y"), "y"))
        editing.move_nodes(workflow, {node_id: point}, f"move {name_of(node)}", user=acting_user())
    except GraphError as exc:
        return _error(exc)
    if not _commit():
        return _error(GraphError(_RACE, "x"), 409)
    return jsonify(
        {
            "node_id": node.node_id,
            "x": node.position_x,
            "y": node.position_y,
            "history": history_state(workflow),
        }
    )


@bp.post("/<int:workflow_id>/positions")
@login_required_page
def save_positions(workflow_id: int):
    """Several steps moved at once (a group drag, or Tidy): one undo step."""
    workflow = load_workflow(workflow_id)
    data = payload()
    positions = data.get("positions")
    if not isinstance(positions, dict) or not positions or len(positions) > MAX_BATCH:
        return _error(GraphError("give positions as {step id: [x, y]}", "positions"))
    text = "tidy" if data.get("reason") == "tidy" else None
    try:
        points = {}
        for key, point in positions.items():
            if not isinstance(point, (list, tuple)) or len(point) != 2:
                raise GraphError("each position is [x, y]", "positions")
            points[key] = (number(point[0], "x"), number(point[1], "y"))
        editing.move_nodes(workflow, points, text, user=acting_user())
    except GraphError as exc:
        db.session.rollback()
        return _error(exc)
    if not _commit():
        return _error(GraphError(_RACE, "positions"), 409)
    return _changed(workflow, {"moved": len(positions)})


def _delete(workflow, nodes, race_field: str) -> Response | None:
    """The domain's delete; an error answer, or None once committed."""
    try:
        editing.delete_nodes(workflow, nodes, user=acting_user())
    except GraphError as exc:
        db.session.rollback()
        return _error(exc)
    if not _commit():
        return _error(GraphError(_RACE, race_field), 409)
    return None


@bp.post("/<int:workflow_id>/nodes/<node_id>/delete")
@login_required_page
def delete_node(workflow_id: int, node_id: str):
    workflow = load_workflow(workflow_id)
    node = load_node(workflow, node_id)
    refused = _delete(workflow, [node], "node")
    if refused is not None:
        if not is_htmx():
            return back_to_builder(workflow, refused[0].json["error"]["message"], "error")
        return refused
    if not is_htmx():
        return back_to_builder(workflow, "Step deleted.")
    return _changed(workflow, {"deleted": [node_id]})


@bp.post("/<int:workflow_id>/nodes/delete")
@login_required_page
def delete_nodes(workflow_id: int):
    """Several selected steps (and their connections) at once: one undo step."""
    workflow = load_workflow(workflow_id)
    try:
        ids = _node_ids(payload())
    except GraphError as exc:
        return _error(exc)
    nodes = [workflow.node_by_key(key) for key in dict.fromkeys(ids)]
    nodes = [node for node in nodes if node is not None]
    if not nodes:
        return _error(GraphError("none of those steps exists", "nodes"), 404)
    deleted = [node.node_id for node in nodes]
    refused = _delete(workflow, nodes, "nodes")
    if refused is not None:
        return refused
    return _changed(workflow, {"deleted": deleted})


@bp.post("/<int:workflow_id>/edges")
@login_required_page
def create_edge(workflow_id: int):
    workflow = load_workflow(workflow_id)
    data = payload()
    try:
        edge = editing.add_edge(
            workflow,
            str(data.get("source", "")),
            str(data.get("port") or "next"),
            str(data.get("target", "")),
            user=acting_user(),
        )
    except GraphError as exc:
        db.session.rollback()
        if not is_htmx():
            return back_to_builder(workflow, str(exc), "error")
        return _error(exc)
    if not _commit():
        return _error(GraphError(_RACE, "port"), 409)
    if not is_htmx():
        return back_to_builder(workflow, "Connected.")
    return _changed(workflow, {"edge_id": edge.id}, 201)


@bp.post("/<int:workflow_id>/edges/<int:edge_id>/delete")
@login_required_page
def delete_edge(workflow_id: int, edge_id: int):
    workflow = load_workflow(workflow_id)
    edge = next((edge for edge in workflow.edges if edge.id == edge_id), None)
    if edge is None:
        return jsonify({"error": {"message": "no such connection", "field": "edge"}}), 404
    editing.delete_edge(workflow, edge, user=acting_user())
    if not _commit():
        return _error(GraphError(_RACE, "edge"), 409)
    if not is_htmx():
        return back_to_builder(workflow, "Connection deleted.")
    return _changed(workflow, {"deleted": edge_id})


@bp.post("/<int:workflow_id>/copy")
@login_required_page
def copy_nodes(workflow_id: int):
    """The selected steps as a clipboard document (nothing changes)."""
    workflow = load_workflow(workflow_id)
    try:
        return jsonify(copy_document(workflow, _node_ids(payload())))
    except GraphError as exc:
        return _error(exc)


@bp.post("/<int:workflow_id>/paste")
@login_required_page
def paste_nodes(workflow_id: int):
    """Steps copied here or from another workflow, top-left at (x, y)."""
    workflow = load_workflow(workflow_id)
    data = payload()
    try:
        x, y = number(data.get("x", 80), "x"), number(data.get("y", 80), "y")
        with recorded(workflow, user=acting_user()) as edit:
            nodes = paste_document(workflow, data.get("document"), x, y)
            many = len(nodes) != 1
            edit.text = f"paste {len(nodes)} steps" if many else f"paste {name_of(nodes[0])}"
            for node in nodes:
                editing.node_added(workflow, node)
    except GraphError as exc:
        db.session.rollback()
        return _error(exc)
    if not _commit():
        return _error(GraphError(_RACE, "document"), 409)
    return _changed(workflow, {"node_ids": [node.node_id for node in nodes]}, 201)


def _history_step(workflow_id: int, step, nothing: str):
    workflow = load_workflow(workflow_id)
    edit = step(workflow)
    if edit is None:
        return _error(GraphError(nothing, "history"), 409)
    record("workflow.edit_undone" if edit.undone else "workflow.edit_redone", workflow)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return _error(GraphError(_RACE, "history"), 409)
    return _changed(workflow, {"label": edit.label, "undone": edit.undone})


@bp.post("/<int:workflow_id>/undo")
@login_required_page
def undo_edit(workflow_id: int):
    return _history_step(workflow_id, undo, "nothing to undo")


@bp.post("/<int:workflow_id>/redo")
@login_required_page
def redo_edit(workflow_id: int):
    return _history_step(workflow_id, redo, "nothing to redo")
