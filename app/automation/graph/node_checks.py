"""Save-time checks of a node's configuration beyond its schema.

:func:`node_problems` is the one place the builder inspector, the API and
the workflow import ask: template syntax and sandbox-refused attributes of
the type's ``templated`` keys (every type), then the type's own
``NodeType.check`` hook (a send_email's sender domain, a webhook's URL
without DNS...), so a document cannot store what the editors refuse (an
import is a save too). :func:`node_warnings` asks the type's
``save_warnings`` (a webhook host that does not resolve now): said, never
refused.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flask import current_app

from app.automation.nodes.registry import CheckContext, UnknownNodeType, get_node_type
from app.automation.rules.references import unknown_audiences
from app.automation.templating.render import template_errors, template_strings_errors


def _context() -> CheckContext:
    return CheckContext(allow_private=bool(current_app.config.get("WEBHOOK_ALLOW_PRIVATE")))


def node_problems(
    node_type: str,
    configuration: dict,
    *,
    schema_errors: Collection[str] = (),
) -> dict[str, list[str]]:
    """Problems beyond the schema, keyed by configuration field: template
    errors, audience rules naming no audience of the firm's
    (app/automation/rules/references.py), then the type's ``check``
    (app/automation/nodes/registry.py).
    A field named in ``schema_errors`` (it failed its schema already) is
    left out of the type's check; an unknown type has none."""
    problems = template_problems(node_type, configuration)
    try:
        kind = get_node_type(node_type)
    except UnknownNodeType:
        return problems
    if "rules" not in schema_errors and isinstance(configuration, dict):
        for field, messages in unknown_audiences(configuration.get("rules")).items():
            problems.setdefault(field, []).extend(messages)
    for field, messages in kind.check(configuration, _context()).items():
        if field not in schema_errors:
            problems.setdefault(field, []).extend(messages)
    return problems


def node_warnings(node_type: str, configuration: dict) -> dict[str, list[str]]:
    """The type's ``save_warnings`` for a configuration that passed every
    check, keyed by configuration field (``{}``: nothing to say)."""
    try:
        kind = get_node_type(node_type)
    except UnknownNodeType:
        return {}
    return {
        field: list(messages)
        for field, messages in kind.save_warnings(configuration, _context()).items()
        if messages
    }


def template_problems(node_type: str, configuration: dict) -> dict[str, list[str]]:
    """Template syntax errors and sandbox-refused attributes, by field: of
    the type's ``templated`` keys, a text or every string inside an object."""
    try:
        keys = get_node_type(node_type).templated
    except UnknownNodeType:
        return {}
    problems: dict[str, list[str]] = {}
    for key in keys:
        value: Any = configuration.get(key)
        if isinstance(value, str) and (errors := template_errors(value)):
            problems[key] = errors
        elif isinstance(value, dict):
            for path, errors in template_strings_errors(value).items():
                problems[f"{key}.{path}"] = errors
    return problems
