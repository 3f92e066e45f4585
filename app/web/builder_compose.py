"""Edits that place and wire several things at once: a step inserted after
another or on a connection, steps copied and pasted (within a workflow or
into another one).

Built from the row primitives of ``app/automation/graph/editing.py``: plain
values in, rows changed, GraphError out; the views record the edit for
undo (``editing.recorded``) and commit.
"""

from __future__ import annotations

from typing import Any

from app.automation.graph.editing import (
    NODE_ID_PATTERN,
    GraphError,
    clamp,
    connect,
    node_ports,
    place_node,
    port_key_of,
    unique_node_id,
)
from app.automation.graph.validation import MAX_NODES
from app.automation.nodes.registry import UnknownNodeType, get_node_type
from app.extensions import db
from app.models import Workflow, WorkflowEdge, WorkflowNode
from app.web.builder_geometry import NODE_HEIGHT, NODE_WIDTH, port_layout

GAP_Y = 64  # between a step and the one it leads to
GAP_X = 40
CLIPBOARD_FORMAT = "automation-steps"
MAX_PASTE = 200
MAX_LABEL = 200


def _overlaps(workflow: Workflow, x: float, y: float, skip: WorkflowNode | None = None) -> bool:
    return any(
        node is not skip
        and abs(node.position_x - x) < NODE_WIDTH + GAP_X / 2
        and abs(node.position_y - y) < NODE_HEIGHT + GAP_Y / 2
        for node in workflow.nodes
    )


def _below(workflow: Workflow, source: WorkflowNode, port_key: str) -> tuple[float, float]:
    """A free spot under ``source``'s output ``port_key``."""
    ports = {port.key: port for port in port_layout(node_ports(source))}
    port_x = ports[port_key].x if port_key in ports else NODE_WIDTH / 2
    x = source.position_x + port_x - NODE_WIDTH / 2
    y = source.position_y + NODE_HEIGHT + GAP_Y
    for _ in range(50):
        if not _overlaps(workflow, x, y):
            break
        x += NODE_WIDTH + GAP_X
    return x, y


def _edge_at(workflow: Workflow, source: WorkflowNode, port_key: str) -> WorkflowEdge | None:
    return next(
        (
            edge
            for edge in workflow.edges
            if edge.source_node_id == source.id and port_key_of(edge) == port_key
        ),
        None,
    )


def _shift_down(workflow: Workflow, start: WorkflowNode, stop: WorkflowNode, amount: float) -> None:
    """Move ``start`` and every step after it (not ``stop``) down by ``amount``."""
    by_pk = {node.id: node for node in workflow.nodes}
    after: dict[int, list[int]] = {}
    for edge in workflow.edges:
        after.setdefault(edge.source_node_id, []).append(edge.target_node_id)
    seen, queue = {stop.id}, [start.id]
    while queue:
        pk = queue.pop()
        if pk in seen or pk not in by_pk:
            continue
        seen.add(pk)
        by_pk[pk].position_y = clamp(by_pk[pk].position_y + amount)
        queue.extend(after.get(pk, ()))


def insert_on_edge(workflow: Workflow, node_type: str, edge: WorkflowEdge) -> WorkflowNode:
    """A new step spliced into ``edge``: source -> new -> target. Steps from
    the target on move down when there is no room between."""
    source, target = edge.source_node, edge.target_node
    port_key = port_key_of(edge)
    x, y = _below(workflow, source, port_key)
    x = target.position_x if abs(target.position_x - x) < NODE_WIDTH else x
    node = place_node(workflow, node_type, clamp(x), clamp(y))
    workflow.edges.remove(edge)
    db.session.flush()
    connect(workflow, source.node_id, port_key, node.node_id)
    ports = node_ports(node)
    if ports:
        connect(workflow, node.node_id, ports[0].key, target.node_id)
    room = target.position_y - (node.position_y + NODE_HEIGHT + GAP_Y)
    if room < 0:
        _shift_down(workflow, target, source, -room)
    return node


def insert_after(
    workflow: Workflow, node_type: str, source_id: str, port_key: str | None = None
) -> WorkflowNode:
    """A new step after ``source_id``: on its first free output (or
    ``port_key``), or spliced into that output's connection when all are taken."""
    source = workflow.node_by_key(source_id)
    if source is None:
        raise GraphError(f"there is no step {source_id!r}", "after")
    ports = [port.key for port in node_ports(source)]
    if not ports:
        raise GraphError(
            f"{source.label or source.node_id} has no outputs yet (fix its configuration first)",
            "after",
        )
    if port_key is not None and port_key not in ports:
        raise GraphError(f"{source.label or source.node_id} has no output {port_key!r}", "port")
    free = [key for key in ports if _edge_at(workflow, source, key) is None]
    chosen = port_key or (free[0] if free else ports[0])
    existing = _edge_at(workflow, source, chosen)
    if existing is not None:
        return insert_on_edge(workflow, node_type, existing)
    x, y = _below(workflow, source, chosen)
    node = place_node(workflow, node_type, clamp(x), clamp(y))
    connect(workflow, source.node_id, chosen, node.node_id)
    return node


# -- copy and paste -----------------------------------------------------------


def copy_document(workflow: Workflow, node_ids: list[str]) -> dict[str, Any]:
    """The steps named and the connections among them, free of row ids, so
    they paste into any workflow of the firm."""
    wanted = [workflow.node_by_key(key) for key in dict.fromkeys(node_ids)]
    nodes = [node for node in wanted if node is not None]
    if not nodes:
        raise GraphError("select at least one step to copy", "nodes")
    inside = {node.id: node for node in nodes}
    return {
        "format": CLIPBOARD_FORMAT,
        "version": 1,
        "nodes": [
            {
                "node_id": node.node_id,
                "node_type": node.node_type,
                "label": node.label or "",
                "x": float(node.position_x),
                "y": float(node.position_y),
                "configuration": dict(node.configuration or {}),
            }
            for node in nodes
        ],
        "edges": [
            {
                "source": inside[edge.source_node_id].node_id,
                "port": port_key_of(edge),
                "target": inside[edge.target_node_id].node_id,
            }
            for edge in workflow.edges
            if edge.source_node_id in inside and edge.target_node_id in inside
        ],
    }


def _pasted_nodes(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict) or document.get("format") != CLIPBOARD_FORMAT:
        raise GraphError("the clipboard holds no copied steps", "document")
    items = document.get("nodes")
    if not isinstance(items, list) or not items:
        raise GraphError("the clipboard holds no copied steps", "document")
    if len(items) > MAX_PASTE:
        raise GraphError(f"paste at most {MAX_PASTE} steps at once", "document")
    checked = []
    for i, item in enumerate(items):
        field = f"nodes.{i}"
        if not isinstance(item, dict):
            raise GraphError("each copied step must be an object", field)
        try:
            kind = get_node_type(str(item.get("node_type", "")))
        except UnknownNodeType:
            raise GraphError(f"unknown node type {item.get('node_type')!r}", field) from None
        key = str(item.get("node_id") or kind.key)
        config = item.get("configuration", {})
        label = item.get("label") or kind.label
        if not NODE_ID_PATTERN.match(key):
            key = kind.key
        if not isinstance(config, dict):
            raise GraphError("configuration must be an object", field)
        if not isinstance(label, str) or len(label) > MAX_LABEL:
            raise GraphError(f"label: text of at most {MAX_LABEL} characters", field)
        try:
            x, y = float(item.get("x", 0)), float(item.get("y", 0))
        except (TypeError, ValueError):
            raise GraphError("x and y must be numbers", field) from None
        if x != x or y != y or abs(x) == float("inf") or abs(y) == float("inf"):
            raise GraphError("x and y must be finite numbers", field)
        checked.append({"key": key, "kind": kind, "label": label, "x": x, "y": y, "config": config})
    return checked


def paste_document(workflow: Workflow, document: Any, x: float, y: float) -> list[WorkflowNode]:
    """New steps from a :func:`copy_document`, their top-left corner at
    (x, y), each under a fresh step id, connected as they were."""
    items = _pasted_nodes(document)
    if len(workflow.nodes) + len(items) > MAX_NODES:
        raise GraphError(f"a workflow may have at most {MAX_NODES} steps", "document")
    left = min(item["x"] for item in items)
    top = min(item["y"] for item in items)
    renamed: dict[str, WorkflowNode] = {}
    created: list[WorkflowNode] = []
    for item in items:
        node = WorkflowNode(
            workflow_id=workflow.id,
            node_id=unique_node_id(workflow, item["key"]),
            node_type=item["kind"].key,
            label=item["label"],
            position_x=clamp(x + item["x"] - left),
            position_y=clamp(y + item["y"] - top),
            configuration=dict(item["config"]),
        )
        workflow.nodes.append(node)
        created.append(node)
        renamed.setdefault(item["key"], node)
    db.session.flush()
    edges = document.get("edges") if isinstance(document.get("edges"), list) else []
    for edge in edges[: MAX_PASTE * 10]:
        if not isinstance(edge, dict):
            continue
        source, target = renamed.get(str(edge.get("source"))), renamed.get(str(edge.get("target")))
        if source is None or target is None:
            continue
        try:
            connect(workflow, source.node_id, str(edge.get("port") or "next"), target.node_id)
        except GraphError:
            continue  # an output the pasted configuration no longer has
    return created
