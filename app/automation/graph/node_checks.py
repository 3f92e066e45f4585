"""Save-time checks of a node's configuration beyond its schema.

:func:`node_problems` is the one place the builder inspector, the API and
the workflow import ask: template syntax and sandbox-refused attributes of
the type's ``templated`` keys (every type), then the type's own
``NodeType.check`` hook (a send_email's sender domain...). The workflow
import adds the webhook SSRF guard (:func:`save_problems`), so a document
cannot store what the editors refuse (an import is a save too).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flask import current_app

from app.automation.delivery.webhook import UnresolvableHost, UnsafeURL, check_url
from app.automation.nodes.registry import CheckContext, UnknownNodeType, get_node_type
from app.automation.templating.render import template_errors, template_strings_errors


def save_problems(
    node_type: str, configuration: dict, allow_private: bool, *, need_dns: bool = True
) -> dict[str, list[str]]:
    """Problems keyed by configuration field (``payload.x``, ``url``).
    ``need_dns=False`` lets a host that does not resolve here pass (the
    send-time check still refuses it, and re-checks what it resolves to)."""
    problems = node_problems(node_type, configuration, need_dns=need_dns)
    if node_type == "webhook":
        problems.update(_url_problems(configuration.get("url"), allow_private, need_dns))
    return problems


def node_problems(
    node_type: str,
    configuration: dict,
    *,
    need_dns: bool = True,
    schema_errors: Collection[str] = (),
) -> dict[str, list[str]]:
    """Problems beyond the schema, keyed by configuration field: template
    errors, then the type's ``check`` (app/automation/nodes/registry.py).
    A field named in ``schema_errors`` (it failed its schema already) is
    left out of the type's check; an unknown type has none."""
    problems = template_problems(node_type, configuration)
    try:
        kind = get_node_type(node_type)
    except UnknownNodeType:
        return problems
    context = CheckContext(
        allow_private=bool(current_app.config.get("WEBHOOK_ALLOW_PRIVATE")), need_dns=need_dns
    )
    for field, messages in kind.check(configuration, context).items():
        if field not in schema_errors:
            problems.setdefault(field, []).extend(messages)
    return problems


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


def _url_problems(url: Any, allow_private: bool, need_dns: bool) -> dict[str, list[str]]:
    try:
        check_url(str(url or ""), allow_private)
    except UnresolvableHost as exc:
        return {"url": [str(exc)]} if need_dns else {}
    except UnsafeURL as exc:
        return {"url": [str(exc)]}
    return {}
