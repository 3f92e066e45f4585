"""A workflow's graph as plain data: what versions store, what the engine
walks, what export writes. Edges name nodes by ``node_id``, not by row id."""

from __future__ import annotations

from typing import Any

from app.automation.nodes.registry import has_flag

SETTINGS = ("allow_reentry", "exit_on_goal", "enroll_existing")


def definition_of(workflow) -> dict[str, Any]:
    nodes_by_pk = {node.id: node for node in workflow.nodes}
    return {
        "name": workflow.name,
        "description": workflow.description or "",
        "settings": {
            **{name: bool(getattr(workflow, name)) for name in SETTINGS},
            "send_window": workflow.send_window or None,
            "priority": int(workflow.priority or 5),
        },
        "nodes": [
            {
                "node_id": node.node_id,
                "node_type": node.node_type,
                "label": node.label or "",
                "position_x": float(node.position_x or 0),
                "position_y": float(node.position_y or 0),
                "configuration": dict(node.configuration or {}),
            }
            for node in workflow.nodes
        ],
        "edges": [
            {
                "source": nodes_by_pk[edge.source_node_id].node_id,
                "target": nodes_by_pk[edge.target_node_id].node_id,
                "condition_type": edge.condition_type,
                "condition_config": dict(edge.condition_config or {}),
                "label": edge.label or "",
            }
            for edge in workflow.edges
            if edge.source_node_id in nodes_by_pk and edge.target_node_id in nodes_by_pk
        ],
        "triggers": [
            {
                "trigger_type": trigger.trigger_type,
                "configuration": dict(trigger.configuration or {}),
                "is_active": bool(trigger.is_active),
            }
            for trigger in workflow.triggers
        ],
    }


class Graph:
    """Navigation over a definition: the entry node, a node's exits."""

    def __init__(self, definition: dict[str, Any]):
        self.definition = definition
        self.nodes: dict[str, dict] = {
            node["node_id"]: node for node in definition.get("nodes", [])
        }
        self.edges: list[dict] = list(definition.get("edges", []))
        self._out: dict[str, list[dict]] = {}
        self._incoming: dict[str, int] = {key: 0 for key in self.nodes}
        for edge in self.edges:
            self._out.setdefault(edge["source"], []).append(edge)
            if edge["target"] in self._incoming:
                self._incoming[edge["target"]] += 1

    def entry_candidates(self) -> list[str]:
        return [
            key
            for key, node in self.nodes.items()
            if not has_flag(node["node_type"], "jump_target") and self._incoming.get(key, 0) == 0
        ]

    def entry(self) -> str | None:
        candidates = self.entry_candidates()
        return candidates[0] if len(candidates) == 1 else None

    def outgoing(self, node_id: str) -> list[dict]:
        return self._out.get(node_id, [])

    def incoming_count(self, node_id: str) -> int:
        return self._incoming.get(node_id, 0)

    def next_node(
        self, node_id: str, condition_type: str | None = None, variant: str | None = None
    ):
        """The target of the exit matching the branch, or None (the end)."""
        for edge in self.outgoing(node_id):
            if edge.get("condition_type") != condition_type:
                continue
            if (
                condition_type == "variant"
                and (edge.get("condition_config") or {}).get("variant") != variant
            ):
                continue
            return edge["target"]
        return None

    def goals_with_rules(self) -> list[dict]:
        """The nodes contacts jump to from anywhere once they meet the
        rules: a ``jump_target`` type's nodes with rules (goals)."""
        return [
            node
            for node in self.nodes.values()
            if has_flag(node["node_type"], "jump_target")
            and (node.get("configuration") or {}).get("rules")
        ]
