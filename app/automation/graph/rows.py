"""Definitions back into rows: the inverse of ``definition_of``.

Rollback restores an old version's graph onto the live workflow; templates
and imports build a new workflow from a definition. Both go through
:func:`apply_definition`, which updates nodes in place by ``node_id`` so
that rows other tables point at (goals, the canvas) keep their ids.
"""

from __future__ import annotations

from typing import Any

from app.automation.graph.definition import SETTINGS
from app.extensions import db
from app.models import Workflow, WorkflowEdge, WorkflowNode, WorkflowTrigger


def apply_definition(
    workflow: Workflow, definition: dict[str, Any], *, with_metadata: bool = False
) -> None:
    """Make the workflow's nodes, edges, triggers and settings those of
    ``definition``. ``with_metadata`` also copies name and description.

    Flushes; does not commit."""
    if with_metadata:
        workflow.name = definition.get("name") or workflow.name
        workflow.description = definition.get("description") or ""
    for name in SETTINGS:
        if name in definition.get("settings", {}):
            setattr(workflow, name, bool(definition["settings"][name]))
    if "send_window" in definition.get("settings", {}):
        workflow.send_window = definition["settings"]["send_window"] or None
    if definition.get("settings", {}).get("priority") is not None:
        workflow.priority = int(definition["settings"]["priority"])
    if workflow.id is None:
        db.session.add(workflow)
        db.session.flush()

    # Edges first: they point at the nodes about to change.
    for edge in list(workflow.edges):
        db.session.delete(edge)
    workflow.edges.clear()
    db.session.flush()

    wanted = {node["node_id"]: node for node in definition.get("nodes", [])}
    by_key: dict[str, WorkflowNode] = {}
    for node in list(workflow.nodes):
        if node.node_id not in wanted:
            workflow.nodes.remove(node)
            db.session.delete(node)
        else:
            by_key[node.node_id] = node
    db.session.flush()
    for key, spec in wanted.items():
        node = by_key.get(key)
        if node is None:
            node = WorkflowNode(workflow_id=workflow.id, firm_id=workflow.firm_id, node_id=key)
            workflow.nodes.append(node)
            by_key[key] = node
        node.node_type = spec["node_type"]
        node.label = spec.get("label") or ""
        node.position_x = float(spec.get("position_x") or 0)
        node.position_y = float(spec.get("position_y") or 0)
        node.configuration = dict(spec.get("configuration") or {})
    db.session.flush()

    for spec in definition.get("edges", []):
        workflow.edges.append(
            WorkflowEdge(
                workflow_id=workflow.id,
                firm_id=workflow.firm_id,
                source_node_id=by_key[spec["source"]].id,
                target_node_id=by_key[spec["target"]].id,
                condition_type=spec.get("condition_type"),
                condition_config=dict(spec.get("condition_config") or {}),
                label=spec.get("label") or "",
            )
        )

    _apply_triggers(workflow, definition.get("triggers", []))
    db.session.flush()


def _apply_triggers(workflow: Workflow, specs: list[dict]) -> None:
    """Reuse trigger rows in order (executions keep their ``trigger_id``)."""
    existing = list(workflow.triggers)
    for index, spec in enumerate(specs):
        if index < len(existing):
            trigger = existing[index]
        else:
            trigger = WorkflowTrigger(workflow_id=workflow.id, firm_id=workflow.firm_id)
            workflow.triggers.append(trigger)
        trigger.trigger_type = spec["trigger_type"]
        trigger.configuration = dict(spec.get("configuration") or {})
        trigger.is_active = bool(spec.get("is_active", True))
    for trigger in existing[len(specs) :]:
        workflow.triggers.remove(trigger)
        db.session.delete(trigger)
