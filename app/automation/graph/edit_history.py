"""Undo and redo of a workflow's edits, kept on the server.

Each edit, from the builder or from the API (a step added, deleted, moved,
connected, its settings; a trigger added, changed, switched off or
removed; the workflow's settings; paste, tidy), is recorded as what it
touched, before and after, in a :class:`~app.models.WorkflowEdit` row.
Undo writes the "before" back through the same rows the builder edits,
so a deleted step returns with its settings and its connections and a
removed trigger with its configuration; redo writes "after".

A part holds four kinds of things, each by a stable key:

- ``nodes`` by ``node_id`` (the graph key versions use);
- ``edges`` by their output, ``"<source node_id>|<port>"``: an output
  leads to one step, so that key names a connection exactly;
- ``triggers`` by the trigger's id (a removed trigger comes back under it);
- ``settings``: ``{"workflow": {name, description, allow_reentry, ...}}``.

Rows written before triggers and settings were kept lack those keys; they
read as empty. Applying a part is best effort against the graph as it is
now: a connection whose step has gone since is skipped, never
half-written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select

from app.extensions import db
from app.models import Workflow, WorkflowEdge, WorkflowEdit, WorkflowNode, WorkflowTrigger

MAX_EDITS = 100  # per workflow; older edits can no longer be undone
KINDS = ("nodes", "edges", "triggers", "settings")
# The workflow's own settings that an edit may change (not its status:
# activate, pause and archive are lifecycle steps, not edits).
SETTINGS = (
    "name",
    "description",
    "allow_reentry",
    "exit_on_goal",
    "enroll_existing",
    "send_window",
    "priority",
)
# Same plane as the builder's (app/web/builder_graph.py COORD_LIMIT).
COORD_LIMIT = 100_000

Part = dict[str, dict[str, Any]]


def _clamp(value: float) -> float:
    return max(-COORD_LIMIT, min(COORD_LIMIT, float(value)))


def port_key(edge: WorkflowEdge) -> str:
    if edge.condition_type == "variant":
        return f"variant:{(edge.condition_config or {}).get('variant')}"
    return edge.condition_type or "next"


def node_state(node: WorkflowNode) -> dict[str, Any]:
    return {
        "node_type": node.node_type,
        "label": node.label or "",
        "x": float(node.position_x or 0),
        "y": float(node.position_y or 0),
        "configuration": dict(node.configuration or {}),
    }


def edge_state(edge: WorkflowEdge, target_node_id: str) -> dict[str, Any]:
    return {
        "target": target_node_id,
        "condition_type": edge.condition_type,
        "condition_config": dict(edge.condition_config or {}),
        "label": edge.label or "",
    }


def trigger_state(trigger: WorkflowTrigger) -> dict[str, Any]:
    return {
        "trigger_type": trigger.trigger_type,
        "configuration": dict(trigger.configuration or {}),
        "is_active": bool(trigger.is_active if trigger.is_active is not None else True),
    }


def settings_state(workflow: Workflow) -> dict[str, Any]:
    return {name: getattr(workflow, name) for name in SETTINGS}


def empty_part() -> Part:
    return {kind: {} for kind in KINDS}


def snapshot(workflow: Workflow) -> Part:
    """Every step, connection and trigger of the workflow and its settings,
    as plain data."""
    by_pk = {node.id: node for node in workflow.nodes}
    nodes = {node.node_id: node_state(node) for node in workflow.nodes}
    edges = {}
    for edge in workflow.edges:
        source, target = by_pk.get(edge.source_node_id), by_pk.get(edge.target_node_id)
        if source is None or target is None:
            continue
        edges[f"{source.node_id}|{port_key(edge)}"] = edge_state(edge, target.node_id)
    triggers = {str(t.id): trigger_state(t) for t in workflow.triggers if t.id is not None}
    return {
        "nodes": nodes,
        "edges": edges,
        "triggers": triggers,
        "settings": {"workflow": settings_state(workflow)},
    }


def diff(before: Part, after: Part) -> dict[str, Part]:
    """Only what changed: ``{"before": part, "after": part}`` over the same keys."""
    patch: dict[str, Part] = {"before": empty_part(), "after": empty_part()}
    for kind in KINDS:
        old_kind, new_kind = before.get(kind) or {}, after.get(kind) or {}
        for key in old_kind.keys() | new_kind.keys():
            old, new = old_kind.get(key), new_kind.get(key)
            if old != new:
                patch["before"][kind][key] = old
                patch["after"][kind][key] = new
    return patch


def _empty(patch: dict[str, Part]) -> bool:
    return not any(patch["before"].get(kind) for kind in KINDS)


def _keep(workflow_id: int, label: str, patch: dict[str, Part], user) -> WorkflowEdit:
    """Write the edit row. A new edit ends what could be redone, and the
    oldest beyond ``MAX_EDITS`` go: one DELETE for both."""
    cutoff = (
        select(WorkflowEdit.id)
        .where(WorkflowEdit.workflow_id == workflow_id)
        .order_by(WorkflowEdit.id.desc())
        .offset(MAX_EDITS - 1)
        .limit(1)
        .scalar_subquery()
    )
    db.session.execute(
        delete(WorkflowEdit)
        .where(
            WorkflowEdit.workflow_id == workflow_id,
            or_(WorkflowEdit.undone.is_(True), WorkflowEdit.id <= cutoff),
        )
        .execution_options(synchronize_session=False)
    )
    edit = WorkflowEdit(
        workflow_id=workflow_id,
        label=label[:200],
        patch=patch,
        user_id=getattr(user, "id", None),
    )
    db.session.add(edit)
    db.session.flush()
    return edit


def record_edit(workflow: Workflow, label: str, before: Part, user=None) -> WorkflowEdit | None:
    """Keep the edit made since ``before`` (a :func:`snapshot`). Nothing is
    kept for an edit that changed nothing. The caller commits."""
    db.session.flush()
    patch = diff(before, snapshot(workflow))
    if _empty(patch):
        return None
    return _keep(workflow.id, label, patch, user)


def record_change(
    workflow_id: int, label: str, before: Part, after: Part, user=None
) -> WorkflowEdit | None:
    """Keep an edit described by the parts it touched (the API's single-row
    changes), without reading the whole workflow; the caller commits."""
    patch = diff(before, after)
    if _empty(patch):
        return None
    return _keep(workflow_id, label, patch, user)


def _apply(workflow: Workflow, part: Part) -> None:
    nodes = {node.node_id: node for node in workflow.nodes}
    # Connections first out of the way, then steps, then connections back.
    for key in part.get("edges") or {}:
        source_id, _, port = key.partition("|")
        source = nodes.get(source_id)
        if source is None:
            continue
        for edge in list(workflow.edges):
            if edge.source_node_id == source.id and port_key(edge) == port:
                workflow.edges.remove(edge)
    for node_id, state in (part.get("nodes") or {}).items():
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
        node.position_x = _clamp(state["x"])
        node.position_y = _clamp(state["y"])
        node.configuration = dict(state["configuration"])
    _apply_triggers(workflow, part.get("triggers") or {})
    for name, value in ((part.get("settings") or {}).get("workflow") or {}).items():
        if name in SETTINGS:
            setattr(workflow, name, value)
    # Deletes before inserts: a step put back under its old id must not
    # meet the row it replaces in the unique (workflow, node_id) index.
    db.session.flush()
    for key, state in (part.get("edges") or {}).items():
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


def _apply_triggers(workflow: Workflow, part: dict[str, Any]) -> None:
    by_id = {str(t.id): t for t in workflow.triggers}
    for key, state in part.items():
        trigger = by_id.get(key)
        if state is None:
            if trigger is not None:
                workflow.triggers.remove(trigger)
            continue
        if trigger is None:
            # Back under its own id: the id was this workflow's, and an
            # audit entry or a link may name it.
            trigger = WorkflowTrigger(id=int(key), workflow_id=workflow.id)
            workflow.triggers.append(trigger)
        trigger.trigger_type = state["trigger_type"]
        trigger.configuration = dict(state["configuration"])
        trigger.is_active = state["is_active"]


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
