"""Undo and redo for the builder canvas, kept on the server.

Each canvas edit (add, delete, move, connect, disconnect, a step's
settings, paste, tidy) is recorded as the steps and connections it touched,
before and after, in a :class:`~app.models.WorkflowEdit` row. Undo writes
the "before" back through the same rows the builder edits, so a deleted
step returns with its settings and its connections; redo writes "after".

Steps are keyed by ``node_id`` (the graph key versions use) and
connections by their output, ``"<source node_id>|<port>"``: an output
leads to one step, so that key names a connection exactly. Applying a
part is best effort against the graph as it is now: a connection whose
step has gone since is skipped, never half-written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from app.extensions import db
from app.models import Workflow, WorkflowEdge, WorkflowEdit, WorkflowNode
from app.web.builder_graph import clamp, port_key_of

MAX_EDITS = 100  # per workflow; older edits can no longer be undone

Part = dict[str, dict[str, Any]]


def snapshot(workflow: Workflow) -> Part:
    """Every step and connection of the workflow, as plain data."""
    by_pk = {node.id: node for node in workflow.nodes}
    nodes = {
        node.node_id: {
            "node_type": node.node_type,
            "label": node.label or "",
            "x": float(node.position_x or 0),
            "y": float(node.position_y or 0),
            "configuration": dict(node.configuration or {}),
        }
        for node in workflow.nodes
    }
    edges = {}
    for edge in workflow.edges:
        source, target = by_pk.get(edge.source_node_id), by_pk.get(edge.target_node_id)
        if source is None or target is None:
            continue
        edges[f"{source.node_id}|{port_key_of(edge)}"] = {
            "target": target.node_id,
            "condition_type": edge.condition_type,
            "condition_config": dict(edge.condition_config or {}),
            "label": edge.label or "",
        }
    return {"nodes": nodes, "edges": edges}


def diff(before: Part, after: Part) -> dict[str, Part]:
    """Only what changed: ``{"before": part, "after": part}`` over the same keys."""
    patch: dict[str, Part] = {
        "before": {"nodes": {}, "edges": {}},
        "after": {"nodes": {}, "edges": {}},
    }
    for kind in ("nodes", "edges"):
        for key in before[kind].keys() | after[kind].keys():
            old, new = before[kind].get(key), after[kind].get(key)
            if old != new:
                patch["before"][kind][key] = old
                patch["after"][kind][key] = new
    return patch


def _empty(patch: dict[str, Part]) -> bool:
    return not patch["before"]["nodes"] and not patch["before"]["edges"]


def record_edit(workflow: Workflow, label: str, before: Part, user=None) -> WorkflowEdit | None:
    """Keep the edit made since ``before`` (a :func:`snapshot`); a new edit
    ends what could be redone. Nothing is kept for an edit that changed
    nothing. The caller commits."""
    db.session.flush()
    patch = diff(before, snapshot(workflow))
    if _empty(patch):
        return None
    db.session.execute(
        delete(WorkflowEdit).where(
            WorkflowEdit.workflow_id == workflow.id, WorkflowEdit.undone.is_(True)
        )
    )
    edit = WorkflowEdit(
        workflow_id=workflow.id,
        label=label[:200],
        patch=patch,
        user_id=getattr(user, "id", None),
    )
    db.session.add(edit)
    db.session.flush()
    stale = db.session.scalars(
        select(WorkflowEdit.id)
        .where(WorkflowEdit.workflow_id == workflow.id)
        .order_by(WorkflowEdit.id.desc())
        .offset(MAX_EDITS)
    ).all()
    if stale:
        db.session.execute(delete(WorkflowEdit).where(WorkflowEdit.id.in_(stale)))
    return edit


def _apply(workflow: Workflow, part: Part) -> None:
    nodes = {node.node_id: node for node in workflow.nodes}
    # Connections first out of the way, then steps, then connections back.
    for key in part["edges"]:
        source_id, _, port = key.partition("|")
        source = nodes.get(source_id)
        if source is None:
            continue
        for edge in list(workflow.edges):
            if edge.source_node_id == source.id and port_key_of(edge) == port:
                workflow.edges.remove(edge)
    for node_id, state in part["nodes"].items():
        node = nodes.get(node_id)
        if state is None:
            if node is not None:
                for edge in list(workflow.edges):
                    if node.id in (edge.source_node_id, edge.target_node_id):
                        workflow.edges.remove(edge)
                workflow.nodes.remove(node)
                del nodes[node_id]
            continue
        if node is None:
            node = WorkflowNode(workflow_id=workflow.id, node_id=node_id)
            workflow.nodes.append(node)
            nodes[node_id] = node
        node.node_type = state["node_type"]
        node.label = state["label"]
        node.position_x = clamp(state["x"])
        node.position_y = clamp(state["y"])
        node.configuration = dict(state["configuration"])
    # Deletes before inserts: a step put back under its old id must not
    # meet the row it replaces in the unique (workflow, node_id) index.
    db.session.flush()
    for key, state in part["edges"].items():
        if state is None:
            continue
        source = nodes.get(key.partition("|")[0])
        target = nodes.get(state["target"])
        if source is None or target is None:
            continue
        workflow.edges.append(
            WorkflowEdge(
                workflow_id=workflow.id,
                source_node_id=source.id,
                target_node_id=target.id,
                condition_type=state["condition_type"],
                condition_config=dict(state["condition_config"]),
                label=state["label"],
            )
        )
    db.session.flush()


def _latest(workflow: Workflow, undone: bool) -> WorkflowEdit | None:
    order = WorkflowEdit.id.asc() if undone else WorkflowEdit.id.desc()
    return db.session.scalars(
        select(WorkflowEdit)
        .where(WorkflowEdit.workflow_id == workflow.id, WorkflowEdit.undone.is_(undone))
        .order_by(order)
        .limit(1)
    ).first()


def undo(workflow: Workflow) -> WorkflowEdit | None:
    """Take back the latest edit; None when there is nothing to undo."""
    edit = _latest(workflow, undone=False)
    if edit is None:
        return None
    _apply(workflow, edit.patch["before"])
    edit.undone = True
    return edit


def redo(workflow: Workflow) -> WorkflowEdit | None:
    """Make again the edit undone last; None when there is none."""
    edit = _latest(workflow, undone=True)
    if edit is None:
        return None
    _apply(workflow, edit.patch["after"])
    edit.undone = False
    return edit


def history_state(workflow: Workflow) -> dict[str, str | None]:
    """What Undo and Redo would do, in words, for the toolbar."""
    rows = db.session.execute(
        select(WorkflowEdit.id, WorkflowEdit.label, WorkflowEdit.undone).where(
            WorkflowEdit.workflow_id == workflow.id
        )
    ).all()
    done = [row for row in rows if not row.undone]
    undone = [row for row in rows if row.undone]
    return {
        "undo": max(done, key=lambda row: row.id).label if done else None,
        "redo": min(undone, key=lambda row: row.id).label if undone else None,
    }
