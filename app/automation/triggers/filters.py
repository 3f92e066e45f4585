"""Pieces of the trigger types' event filters (app/automation/triggers/kinds/).

A filter takes the trigger's configuration and the event's ``data`` (the
shapes the sources emit, see ``bus.py``); a filter key left empty (None /
missing) means "any". Rules (``match`` / ``rules``) are not looked at by
filters: they filter the contact and are evaluated by the bus with the one
rules evaluator (:func:`rule_group_of`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None


def same_text(wanted: Any, actual: Any) -> bool:
    return str(wanted).strip().lower() == str(actual or "").strip().lower()


def any_event(config: dict, data: dict) -> bool:
    """The filter of a type whose events all pass (only its rules filter)."""
    return True


def rule_group_of(configuration: dict | None) -> dict | None:
    """The trigger's optional contact rules, or None when it has none."""
    configuration = configuration or {}
    rules = configuration.get("rules") or []
    if not rules:
        return None
    return {"match": configuration.get("match") or "all", "rules": rules}
