"""Rules and configurations that name the firm's objects by id: an id that
is not one of the current firm's is refused as unknown, on every save
(docs/CONTRACT.md "Audiences"). Another firm's id reads exactly like an id
that does not exist, so a refusal tells nothing about other firms."""

from __future__ import annotations

from typing import Any

from app.models import Audience
from app.tenancy import scoped_get

UNKNOWN_AUDIENCE = "no such audience"


def audience_known(audience_id: Any) -> bool:
    """Whether ``audience_id`` is one of the current firm's audiences."""
    return isinstance(audience_id, int) and scoped_get(Audience, audience_id) is not None


def unknown_audiences(rules: Any, path: str = "rules") -> dict[str, list[str]]:
    """``{"rules.0.audience": ["no such audience"]}`` for each audience rule
    (at any depth) naming no audience of the current firm's."""
    errors: dict[str, list[str]] = {}
    if not isinstance(rules, list):
        return errors
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        here = f"{path}.{i}"
        if "rules" in rule:
            errors.update(unknown_audiences(rule["rules"], f"{here}.rules"))
        elif "audience" in rule and not audience_known(rule["audience"]):
            errors[f"{here}.audience"] = [UNKNOWN_AUDIENCE]
    return errors


def audience_ids_in(rules: Any) -> set[int]:
    """The ids of the audiences a rule list names, at any depth."""
    found: set[int] = set()
    if not isinstance(rules, list):
        return found
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        if "rules" in rule:
            found |= audience_ids_in(rule["rules"])
        elif isinstance(rule.get("audience"), int):
            found.add(rule["audience"])
    return found
