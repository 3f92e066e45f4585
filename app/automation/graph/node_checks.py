"""Save-time checks of a node's configuration beyond its schema: template
syntax and sandbox-refused attributes, the sender's domain, and the
webhook SSRF guard.

The API and the builder inspector run their own copies of these checks;
this module is the one the workflow import uses, so a document cannot
store what the editors refuse (an import is a save too).
"""

from __future__ import annotations

from typing import Any

from app.automation.delivery.senders import sender_problem
from app.automation.delivery.webhook import UnresolvableHost, UnsafeURL, check_url
from app.automation.nodes.registry import UnknownNodeType, get_node_type
from app.automation.templating.render import template_errors, template_strings_errors


def save_problems(
    node_type: str, configuration: dict, allow_private: bool, *, need_dns: bool = True
) -> dict[str, list[str]]:
    """Problems keyed by configuration field (``payload.x``, ``url``).
    ``need_dns=False`` lets a host that does not resolve here pass (the
    send-time check still refuses it, and re-checks what it resolves to)."""
    problems = template_problems(node_type, configuration)
    problems.update(sender_problems(node_type, configuration))
    if node_type == "webhook":
        problems.update(_url_problems(configuration.get("url"), allow_private, need_dns))
    return problems


def sender_problems(node_type: str, configuration: dict) -> dict[str, list[str]]:
    """A send_email's ``from_email`` must be on one of the current firm's
    sending domains or MAIL_FROM's (docs/SENDING.md)."""
    if node_type != "send_email":
        return {}

    problem = sender_problem(configuration.get("from_email"))
    return {"from_email": [problem]} if problem else {}


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
