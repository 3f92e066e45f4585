"""Builders for template data: positions laid out for the canvas, one
column per branch, rows top to bottom."""

from __future__ import annotations

from typing import Any

_X0, _DX, _Y0, _DY = 360.0, 280.0, 60.0, 130.0


def _node(key: str, node_type: str, label: str, col: float, row: int, **config: Any) -> dict:
    return {
        "node_id": key,
        "node_type": node_type,
        "label": label,
        "position_x": _X0 + col * _DX,
        "position_y": _Y0 + row * _DY,
        "configuration": config,
    }


def _edge(source: str, target: str, condition_type: str | None = None, **config: Any) -> dict:
    return {
        "source": source,
        "target": target,
        "condition_type": condition_type,
        "condition_config": config,
        "label": "",
    }


def _trigger(trigger_type: str, **config: Any) -> dict:
    return {"trigger_type": trigger_type, "configuration": config, "is_active": True}


def _email(key: str, label: str, col: float, row: int, subject: str, body: str) -> dict:
    return _node(key, "send_email", label, col, row, subject=subject, body_text=body)


def _wait_hours(key: str, label: str, col: float, row: int, hours: float) -> dict:
    return _node(key, "wait_time", label, col, row, wait_duration_hours=hours)


def _settings(**changes: bool) -> dict:
    return {"allow_reentry": False, "exit_on_goal": True, "enroll_existing": False, **changes}


def _workflow(name, description, nodes, edges, triggers, goals=(), **settings) -> dict:
    return {
        "name": name,
        "description": description,
        "settings": _settings(**settings),
        "nodes": nodes,
        "edges": edges,
        "triggers": triggers,
        "goals": list(goals),
    }


HI = "Hi {{ contact.first_name }},\n\n"
