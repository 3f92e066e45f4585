"""What the builder canvas draws, computed once per request.

Steps, their output ports, connections and the triggers above the entry
step. The numbers mirror ``static/canvas/geometry.js`` so the first paint
is right without JavaScript and the script only recomputes while dragging.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from app.automation.analytics.experiments import decided_winners
from app.automation.graph.editing import node_ports, port_key_of
from app.automation.nodes import summaries
from app.automation.nodes.registry import (
    Port,
    UnknownNodeType,
    card_summary,
    get_node_type,
    has_flag,
)
from app.automation.triggers.registry import UnknownTriggerType, get_trigger_type
from app.models import Workflow, WorkflowNode

NODE_WIDTH = 240
NODE_HEIGHT = 76
TRIGGER_WIDTH = 210
TRIGGER_HEIGHT = 48
TRIGGER_GAP = 16  # between triggers side by side
TRIGGER_RISE = 84  # from a trigger's top to the entry step's top


@dataclass(frozen=True)
class DrawnPort:
    key: str
    label: str
    x: float  # relative to the node's top-left corner
    y: float
    # An unconnected output of a branching step: contacts who take it end
    # there (validation refuses a branching step with no output connected).
    ends: bool = False


def port_layout(ports: tuple[Port, ...]) -> list[DrawnPort]:
    """Outputs spread along the bottom edge, left to right."""
    count = len(ports)
    return [
        DrawnPort(port.key, port.label, NODE_WIDTH * (i + 1) / (count + 1), NODE_HEIGHT)
        for i, port in enumerate(ports)
    ]


def edge_path(sx: float, sy: float, tx: float, ty: float) -> str:
    """A vertical S-curve from an output (bottom) to an input (top)."""
    bend = max(40.0, abs(ty - sy) / 2)
    return (
        f"M{sx:.1f},{sy:.1f} C{sx:.1f},{sy + bend:.1f} {tx:.1f},{ty - bend:.1f} {tx:.1f},{ty:.1f}"
    )


def entry_node(workflow: Workflow) -> WorkflowNode | None:
    """Where contacts enter: the step no connection enters (not a
    ``jump_target`` such as a goal); with several, the topmost, as the
    canvas shows them."""
    entered = {edge.target_node_id for edge in workflow.edges}
    candidates = [
        node
        for node in workflow.nodes
        if node.id not in entered and not has_flag(node.node_type, "jump_target")
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda node: (node.position_y, node.position_x))


def trigger_summary(trigger) -> str:
    """ "tag vip", "form 3 · if score >= 50": the trigger's filter in words."""
    config = dict(trigger.configuration or {})
    parts = [
        f"{key.replace('_', ' ')} {', '.join(map(str, value)) if isinstance(value, list) else value}"
        for key, value in config.items()
        if key not in ("match", "rules") and value not in (None, "", [])
    ]
    rules = summaries.rules(config)
    if rules:
        parts.append(f"if {rules}")
    return " · ".join(parts)


def trigger_layout(workflow: Workflow, entry: WorkflowNode | None) -> list[dict[str, Any]]:
    """The triggers side by side above the entry step (or the canvas's
    top-left); an "add a trigger" card stands in when there is none."""
    triggers = list(workflow.triggers) or [None]
    count = len(triggers)
    total = count * TRIGGER_WIDTH + (count - 1) * TRIGGER_GAP
    if entry is not None:
        left = entry.position_x + NODE_WIDTH / 2 - total / 2
        top = entry.position_y - TRIGGER_RISE - TRIGGER_HEIGHT
    else:
        first = min(workflow.nodes, key=lambda n: (n.position_y, n.position_x), default=None)
        left = first.position_x if first else 40.0
        top = (first.position_y if first else 140.0) - TRIGGER_RISE - TRIGGER_HEIGHT
    drawn = []
    for i, trigger in enumerate(triggers):
        x = left + i * (TRIGGER_WIDTH + TRIGGER_GAP)
        kind = None
        if trigger is not None:
            try:
                kind = get_trigger_type(trigger.trigger_type)
            except UnknownTriggerType:
                kind = None
        item = {"row": trigger, "kind": kind, "x": x, "y": top, "path": None}
        item["summary"] = trigger_summary(trigger) if trigger is not None else ""
        if entry is not None:
            item["path"] = edge_path(
                x + TRIGGER_WIDTH / 2,
                top + TRIGGER_HEIGHT,
                entry.position_x + NODE_WIDTH / 2,
                entry.position_y,
            )
        drawn.append(item)
    return drawn


def drawing(workflow: Workflow, problems: list[dict]) -> dict:
    """Everything the SVG needs, computed once."""
    by_pk = {node.id: node for node in workflow.nodes}
    node_problems: dict[str, list[str]] = {}
    for problem in problems:
        if problem.get("node"):
            node_problems.setdefault(problem["node"], []).append(problem["message"])
    nodes = []
    port_positions: dict[tuple[int, str], tuple[float, float]] = {}
    connected = {(edge.source_node_id, port_key_of(edge)) for edge in workflow.edges}
    # A decided experiment says so on its card (docs/EXPERIMENTS.md); one
    # query, and only when the workflow has a split.
    has_split = any(node.node_type == "split" for node in workflow.nodes)
    winners = decided_winners(workflow.id) if has_split else {}
    for node in workflow.nodes:
        try:
            kind = get_node_type(node.node_type)
        except UnknownNodeType:
            kind = None
        ports = port_layout(node_ports(node))
        if len(ports) > 1:
            ports = [replace(p, ends=(node.id, p.key) not in connected) for p in ports]
        for port in ports:
            port_positions[(node.id, port.key)] = (
                node.position_x + port.x,
                node.position_y + port.y,
            )
        nodes.append(
            {
                "row": node,
                "kind": kind,
                "ports": ports,
                "summary": card_summary(node.node_type, node.configuration)
                + (f" · winner {winners[node.node_id]}" if node.node_id in winners else ""),
                "problems": node_problems.get(node.node_id, []),
            }
        )
    edges = []
    for edge in workflow.edges:
        source, target = by_pk.get(edge.source_node_id), by_pk.get(edge.target_node_id)
        if source is None or target is None:
            continue
        key = port_key_of(edge)
        sx, sy = port_positions.get(
            (source.id, key),
            (source.position_x + NODE_WIDTH / 2, source.position_y + NODE_HEIGHT),
        )
        tx, ty = target.position_x + NODE_WIDTH / 2, target.position_y
        edges.append(
            {
                "row": edge,
                "source": source,
                "target": target,
                "port": key,
                "path": edge_path(sx, sy, tx, ty),
                # The "+" sits on the curve's middle (t = 1/2 of the S-curve).
                "mid_x": (sx + tx) / 2,
                "mid_y": (sy + ty) / 2,
            }
        )
    entry = entry_node(workflow)
    return {
        "nodes": nodes,
        "edges": edges,
        "entry": entry.node_id if entry is not None else "",
        "triggers": trigger_layout(workflow, entry),
        "width": NODE_WIDTH,
        "height": NODE_HEIGHT,
    }
