"""Graph edits the builder makes.

No request objects here: each function takes a workflow (already loaded
through the tenancy-scoped session) and plain values, changes rows, and
raises :class:`GraphError` with a message a marketer can act on. The views
commit. What the canvas draws is in ``builder_geometry.py``.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from app.automation.graph.validation import MAX_NODES
from app.automation.nodes.registry import (
    NodeType,
    Port,
    UnknownNodeType,
    get_node_type,
)
from app.extensions import db
from app.models import Workflow, WorkflowEdge, WorkflowNode

# Keep dropped nodes on a sane plane: a typo in a request must not put a
# node a million pixels away.
COORD_LIMIT = 100_000
NODE_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


class GraphError(ValueError):
    """An edit the graph refuses; ``field`` names the offending input."""

    def __init__(self, message: str, field: str = "__root__"):
        super().__init__(message)
        self.field = field


def clamp(value: float) -> float:
    return max(-COORD_LIMIT, min(COORD_LIMIT, float(value)))


def node_ports(node: WorkflowNode) -> tuple[Port, ...]:
    """The node's outputs; a split whose variants do not parse has none yet."""
    try:
        kind = get_node_type(node.node_type)
    except UnknownNodeType:
        return ()
    try:
        config = kind.parse_config(node.configuration)
    except ValidationError:
        config = None
    return kind.ports(config)


def unique_node_id(workflow: Workflow, base: str) -> str:
    taken = {node.node_id for node in workflow.nodes}
    if base not in taken:
        return base
    n = 2
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


def add_node(workflow: Workflow, node_type: str, x: float, y: float) -> WorkflowNode:
    """A new node of ``node_type`` with the type's default configuration."""
    if len(workflow.nodes) >= MAX_NODES:
        raise GraphError(f"a workflow may have at most {MAX_NODES} steps", "node_type")
    try:
        kind: type[NodeType] = get_node_type(node_type)
    except UnknownNodeType:
        raise GraphError(f"unknown node type {node_type!r}", "node_type") from None
    node = WorkflowNode(
        workflow_id=workflow.id,
        node_id=unique_node_id(workflow, kind.key),
        node_type=kind.key,
        label=kind.label,
        position_x=clamp(x),
        position_y=clamp(y),
        configuration=kind.default_config(),
    )
    workflow.nodes.append(node)
    db.session.flush()
    return node


def move_node(node: WorkflowNode, x: float, y: float) -> None:
    node.position_x = clamp(x)
    node.position_y = clamp(y)


def rename_node_id(workflow: Workflow, node: WorkflowNode, new_id: str) -> None:
    """Change a node's graph key; edges follow (they point at row ids)."""
    new_id = new_id.strip()
    if new_id == node.node_id:
        return
    if not NODE_ID_PATTERN.match(new_id):
        raise GraphError(
            "use lower-case letters, digits and underscores, starting with a letter", "node_id"
        )
    if workflow.node_by_key(new_id) is not None:
        raise GraphError(f"node id {new_id!r} is already taken", "node_id")
    node.node_id = new_id


def remove_node(workflow: Workflow, node: WorkflowNode) -> None:
    for edge in list(workflow.edges):
        if node.id in (edge.source_node_id, edge.target_node_id):
            workflow.edges.remove(edge)
    workflow.nodes.remove(node)


def remove_edge(workflow: Workflow, edge: WorkflowEdge) -> None:
    workflow.edges.remove(edge)


def port_key_of(edge: WorkflowEdge) -> str:
    if edge.condition_type == "variant":
        return f"variant:{(edge.condition_config or {}).get('variant')}"
    return edge.condition_type or "next"


def connect(workflow: Workflow, source_id: str, port_key: str, target_id: str) -> WorkflowEdge:
    """Connect an output of ``source_id`` to ``target_id``.

    The output must exist on the source's type and be free: a port leads to
    exactly one next step, so the engine never has to choose."""
    source = workflow.node_by_key(source_id)
    target = workflow.node_by_key(target_id)
    if source is None:
        raise GraphError(f"there is no step {source_id!r}", "source")
    if target is None:
        raise GraphError(f"there is no step {target_id!r}", "target")
    if source.id == target.id:
        raise GraphError("a step cannot connect to itself", "target")
    ports = {port.key: port for port in node_ports(source)}
    port = ports.get(port_key or "next")
    if port is None:
        names = ", ".join(ports) or "none (fix its configuration first)"
        raise GraphError(
            f"{source.label or source.node_id} has no output {port_key!r} (outputs: {names})",
            "port",
        )
    for edge in workflow.edges:
        if edge.source_node_id == source.id and port_key_of(edge) == port.key:
            raise GraphError(
                f"the output {port.label or 'next'!r} of {source.label or source.node_id} "
                "is already connected; delete that connection first",
                "port",
            )
    edge = WorkflowEdge(
        workflow_id=workflow.id,
        source_node_id=source.id,
        target_node_id=target.id,
        condition_type=port.condition_type,
        condition_config=dict(port.condition_config),
        label=port.label,
    )
    workflow.edges.append(edge)
    db.session.flush()
    return edge
