"""What changed between two workflow definitions (versions, or a version
and the live graph): the history page's visual diff and the API's.

Nodes are matched by ``node_id``, edges by (source, port, target),
triggers by type in order. A node only dragged elsewhere on the canvas is
"moved", not "changed": its behaviour is the same.
"""

from __future__ import annotations

import json
from typing import Any

NODE_FIELDS = ("node_type", "label")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _edge_key(edge: dict) -> tuple:
    return (
        edge["source"],
        edge.get("condition_type") or "",
        _canonical(edge.get("condition_config") or {}),
        edge["target"],
    )


def config_changes(old: dict, new: dict) -> list[dict]:
    """Top-level configuration fields that differ: ``[{"field", "old", "new"}]``
    (``None`` where the field is absent)."""
    changes = []
    for key in sorted(set(old) | set(new)):
        if _canonical(old.get(key)) != _canonical(new.get(key)):
            changes.append({"field": key, "old": old.get(key), "new": new.get(key)})
    return changes


def _node_diff(old_nodes: list[dict], new_nodes: list[dict]) -> dict:
    old_by = {node["node_id"]: node for node in old_nodes}
    new_by = {node["node_id"]: node for node in new_nodes}
    changed, moved = [], []
    for key in [node["node_id"] for node in new_nodes if node["node_id"] in old_by]:
        before, after = old_by[key], new_by[key]
        attributes = [
            {"field": name, "old": before.get(name), "new": after.get(name)}
            for name in NODE_FIELDS
            if (before.get(name) or "") != (after.get(name) or "")
        ]
        fields = config_changes(before.get("configuration") or {}, after.get("configuration") or {})
        if attributes or fields:
            changed.append(
                {
                    "node_id": key,
                    "node_type": after["node_type"],
                    "label": after.get("label") or "",
                    "attributes": attributes,
                    "fields": fields,
                }
            )
        elif (before.get("position_x"), before.get("position_y")) != (
            after.get("position_x"),
            after.get("position_y"),
        ):
            moved.append(key)
    return {
        "added": [node for node in new_nodes if node["node_id"] not in old_by],
        "removed": [node for node in old_nodes if node["node_id"] not in new_by],
        "changed": changed,
        "moved": moved,
    }


def _edge_diff(old_edges: list[dict], new_edges: list[dict]) -> dict:
    old_keys = {_edge_key(edge) for edge in old_edges}
    new_keys = {_edge_key(edge) for edge in new_edges}
    return {
        "added": [edge for edge in new_edges if _edge_key(edge) not in old_keys],
        "removed": [edge for edge in old_edges if _edge_key(edge) not in new_keys],
    }


def _trigger_diff(old_triggers: list[dict], new_triggers: list[dict]) -> dict:
    """Triggers have no key of their own: pair them by type, in order."""
    added, removed, changed = [], [], []
    by_type_old: dict[str, list[dict]] = {}
    for trigger in old_triggers:
        by_type_old.setdefault(trigger["trigger_type"], []).append(trigger)
    for trigger in new_triggers:
        candidates = by_type_old.get(trigger["trigger_type"]) or []
        if not candidates:
            added.append(trigger)
            continue
        before = candidates.pop(0)
        fields = config_changes(
            before.get("configuration") or {}, trigger.get("configuration") or {}
        )
        if bool(before.get("is_active", True)) != bool(trigger.get("is_active", True)):
            fields.append(
                {
                    "field": "is_active",
                    "old": before.get("is_active"),
                    "new": trigger.get("is_active"),
                }
            )
        if fields:
            changed.append({"trigger_type": trigger["trigger_type"], "fields": fields})
    for rest in by_type_old.values():
        removed.extend(rest)
    return {"added": added, "removed": removed, "changed": changed}


def diff_definitions(old: dict, new: dict) -> dict:
    """The changes that turn ``old`` into ``new``."""
    settings = config_changes(old.get("settings") or {}, new.get("settings") or {})
    metadata = [
        {"field": name, "old": old.get(name), "new": new.get(name)}
        for name in ("name", "description")
        if (old.get(name) or "") != (new.get(name) or "")
    ]
    result = {
        "nodes": _node_diff(old.get("nodes", []), new.get("nodes", [])),
        "edges": _edge_diff(old.get("edges", []), new.get("edges", [])),
        "triggers": _trigger_diff(old.get("triggers", []), new.get("triggers", [])),
        "settings": settings,
        "metadata": metadata,
    }
    result["is_empty"] = not any(
        [
            result["nodes"]["added"],
            result["nodes"]["removed"],
            result["nodes"]["changed"],
            result["edges"]["added"],
            result["edges"]["removed"],
            result["triggers"]["added"],
            result["triggers"]["removed"],
            result["triggers"]["changed"],
            settings,
            metadata,
        ]
    )
    return result


def node_status_map(diff: dict) -> dict[str, str]:
    """node_id -> "added" | "removed" | "changed" | "moved", for colouring
    a drawing of both graphs."""
    status: dict[str, str] = {}
    for node in diff["nodes"]["added"]:
        status[node["node_id"]] = "added"
    for node in diff["nodes"]["removed"]:
        status[node["node_id"]] = "removed"
    for node in diff["nodes"]["changed"]:
        status[node["node_id"]] = "changed"
    for key in diff["nodes"]["moved"]:
        status[key] = "moved"
    return status


NODE_W, NODE_H, MARGIN = 190.0, 52.0, 30.0


def diff_drawing(old: dict, new: dict, diff: dict | None = None) -> dict:
    """Both graphs drawn as one: every node of ``new`` at its position plus
    the removed nodes of ``old`` at theirs, each with its diff status
    ("added", "removed", "changed", "moved", "same"), and the edges of
    both with theirs. Coordinates are shifted so the drawing starts at
    (MARGIN, MARGIN); ``width``/``height`` size the SVG viewBox."""
    diff = diff or diff_definitions(old, new)
    status = node_status_map(diff)
    placed: dict[str, dict] = {}
    for node in list(new.get("nodes", [])) + diff["nodes"]["removed"]:
        key = node["node_id"]
        if key in placed:
            continue
        placed[key] = {
            "node_id": key,
            "label": node.get("label") or key,
            "node_type": node["node_type"],
            "x": float(node.get("position_x") or 0),
            "y": float(node.get("position_y") or 0),
            "status": status.get(key, "same"),
        }
    if placed:
        min_x = min(n["x"] for n in placed.values())
        min_y = min(n["y"] for n in placed.values())
        for n in placed.values():
            n["x"] += MARGIN - min_x
            n["y"] += MARGIN - min_y
    removed_edges = {_edge_key(edge) for edge in diff["edges"]["removed"]}
    added_edges = {_edge_key(edge) for edge in diff["edges"]["added"]}
    edges = []
    for edge in list(new.get("edges", [])) + diff["edges"]["removed"]:
        source, target = placed.get(edge["source"]), placed.get(edge["target"])
        if source is None or target is None:
            continue
        key = _edge_key(edge)
        edges.append(
            {
                "x1": source["x"] + NODE_W / 2,
                "y1": source["y"] + NODE_H,
                "x2": target["x"] + NODE_W / 2,
                "y2": target["y"],
                "label": (edge.get("condition_config") or {}).get("variant")
                or edge.get("condition_type")
                or "",
                "status": "removed"
                if key in removed_edges
                else "added"
                if key in added_edges
                else "same",
            }
        )
    width = max((n["x"] for n in placed.values()), default=0) + NODE_W + MARGIN
    height = max((n["y"] for n in placed.values()), default=0) + NODE_H + MARGIN
    return {
        "nodes": list(placed.values()),
        "edges": edges,
        "width": width,
        "height": height,
        "node_w": NODE_W,
        "node_h": NODE_H,
    }
