"""A workflow as a portable JSON document: export, and import as a draft.

The document holds no ids and no firm data. Steps and connections name
nodes by ``node_id``; where a configuration points at a firm's record (a
list, a form, another workflow) the export writes a reference by name,
``{"$ref": "list", "name": "Newsletter"}``, which import resolves in the
importing firm (creating a missing list; a missing form or workflow is a
problem). Webhook header values are exported blank unless asked for.
Exporting an import gives back the same document.

Import refuses documents with problems in their parts (unknown step or
trigger types, invalid configurations, connections to missing steps) and
says which; a graph that is merely unfinished (no trigger yet, a step
not connected) imports as a draft, and activation reports the rest.
"""

from __future__ import annotations

import copy
import json
import math
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from app.automation.graph.definition import definition_of
from app.automation.graph.document import (
    FORMAT,
    FORMAT_VERSION,
    Document,
    WorkflowDoc,
)
from app.automation.graph.node_checks import node_problems
from app.automation.graph.rows import apply_definition
from app.automation.nodes.registry import config_errors
from app.automation.triggers.registry import trigger_config_errors
from app.extensions import db
from app.models import ContactList, Form, Topic, Workflow, WorkflowGoal
from app.models.audit import record


class ImportProblems(ValueError):
    """``problems``: ``[{"node": node_id or None, "field": path, "message": ...}]``."""

    def __init__(self, problems: list[dict]):
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))
        self.problems = problems


def _problem(field: str, message: str, node: str | None = None) -> dict:
    return {"node": node, "field": field, "message": message}


# ---------------------------------------------------------------- references

# (where, key) pairs that hold a firm record's id, by record kind.
_NODE_REFS = {
    "add_to_list": ("list", "list"),
    "remove_from_list": ("list", "list"),
    "send_email": ("topic", "topic"),
}
_TRIGGER_REFS = {
    "contact_list_added": ("list", "list"),
    "contact_list_removed": ("list", "list"),
    "form_submitted": ("form_id", "form"),
    "email_opened": ("workflow_id", "workflow"),
    "email_clicked": ("workflow_id", "workflow"),
    "email_replied": ("workflow_id", "workflow"),
    "email_bounced": ("workflow_id", "workflow"),
    "email_unsubscribed": ("workflow_id", "workflow"),
    "email_complained": ("workflow_id", "workflow"),
}
_MODELS = {"list": ContactList, "form": Form, "workflow": Workflow, "topic": Topic}


def _map_rules(rules: Any, convert) -> Any:
    """Apply ``convert(kind, value)`` to every list rule's ``list`` and topic
    rule's ``topic``, at any depth."""
    if not isinstance(rules, list):
        return rules
    out = []
    for rule in rules:
        if isinstance(rule, dict) and isinstance(rule.get("rules"), list):
            rule = {**rule, "rules": _map_rules(rule["rules"], convert)}
        elif isinstance(rule, dict) and "list" in rule and "field" not in rule:
            rule = {**rule, "list": convert("list", rule["list"])}
        elif isinstance(rule, dict) and "topic" in rule and "field" not in rule:
            rule = {**rule, "topic": convert("topic", rule["topic"])}
        out.append(rule)
    return out


def _map_configuration(configuration: dict, ref: tuple[str, str] | None, convert) -> dict:
    configuration = copy.deepcopy(configuration or {})
    if ref is not None:
        key, kind = ref
        if configuration.get(key) is not None:
            configuration[key] = convert(kind, configuration[key])
    if "rules" in configuration:
        configuration["rules"] = _map_rules(configuration["rules"], convert)
    return configuration


def _to_reference(kind: str, value: Any) -> Any:
    if not isinstance(value, int) or isinstance(value, bool):
        return value
    row = db.session.get(_MODELS[kind], value)
    return {"$ref": kind, "name": getattr(row, "name", None)}


class _Resolver:
    """Turns references back into the importing firm's ids."""

    def __init__(self):
        self.problems: list[dict] = []
        self.where = ""
        self.node: str | None = None

    def __call__(self, kind: str, value: Any) -> Any:
        if not (isinstance(value, dict) and "$ref" in value):
            return value
        name = value.get("name")
        if value.get("$ref") != kind or not isinstance(name, str) or not name:
            self.problems.append(
                _problem(self.where, f"a {kind} reference needs a name", self.node)
            )
            return value
        model = _MODELS[kind]
        row = db.session.scalars(select(model).where(model.name == name)).first()
        if row is None and kind == "list":
            row = ContactList(name=name)
            db.session.add(row)
            db.session.flush()
        if row is None:
            self.problems.append(
                _problem(self.where, f"there is no {kind} named {name!r} here", self.node)
            )
            return value
        return row.id


# ------------------------------------------------------------------- export

# Webhook header values are blanked: a document is meant to be shared, and
# any header may carry a credential (``X-Custom: <key>``), whatever its name.
# Import keeps the header (empty) so the marketer sees where to put the new
# firm's own value. The person exporting may opt in to keep the values.


def _without_header_values(configuration: dict) -> dict:
    headers = configuration.get("headers")
    if not isinstance(headers, dict):
        return configuration
    return {**configuration, "headers": {name: "" for name in headers}}


def export_workflow(workflow: Workflow, header_values: bool = False) -> dict[str, Any]:
    """The workflow as a document (JSON-ready, no ids, no firm data).
    Webhook header values are left out unless ``header_values``."""
    keep = (lambda configuration: configuration) if header_values else _without_header_values
    definition = definition_of(workflow)
    nodes_by_pk = {node.id: node.node_id for node in workflow.nodes}
    goals = db.session.scalars(
        select(WorkflowGoal)
        .where(WorkflowGoal.workflow_id == workflow.id)
        .order_by(WorkflowGoal.id)
    ).all()
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "workflow": {
            "name": definition["name"],
            "description": definition["description"],
            "settings": definition["settings"],
            "nodes": [
                {
                    **node,
                    "configuration": keep(
                        _map_configuration(
                            node["configuration"], _NODE_REFS.get(node["node_type"]), _to_reference
                        )
                    ),
                }
                for node in definition["nodes"]
            ],
            "edges": definition["edges"],
            "triggers": [
                {
                    **trigger,
                    "configuration": _map_configuration(
                        trigger["configuration"],
                        _TRIGGER_REFS.get(trigger["trigger_type"]),
                        _to_reference,
                    ),
                }
                for trigger in definition["triggers"]
            ],
            "goals": [
                {
                    "name": goal.name,
                    "node": nodes_by_pk.get(goal.goal_node_id),
                    "goal_value": str(Decimal(goal.goal_value or 0).quantize(Decimal("0.01"))),
                }
                for goal in goals
            ],
        },
    }


# ------------------------------------------------------------------- import


def loads(raw: bytes | str) -> Any:
    """JSON text to a document; ``NaN``/``Infinity`` and absurd nesting are
    refused as :class:`ImportProblems` (the database cannot store them)."""

    def refuse(token: str):
        raise ValueError(f"{token} is not a JSON number")

    try:
        return json.loads(raw, parse_constant=refuse)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImportProblems([_problem("document", f"not JSON: {exc}")]) from None
    except RecursionError:
        raise ImportProblems([_problem("document", "nested too deeply")]) from None


def _unstorable(value: Any, path: str = "document", depth: int = 0) -> str | None:
    """Where the document holds what PostgreSQL cannot store (NUL in a
    string, a non-finite number) or nests absurdly deep; None if nowhere."""
    if depth > 64:
        return path
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return f"{path}.{key!r}"
        found = _unstorable(item, f"{path}.{key}", depth + 1)
        if found:
            return found
    return None


def parse_document(document: Any) -> WorkflowDoc:
    """The document's shape, or :class:`ImportProblems` naming each field."""
    where = _unstorable(document)
    if where is not None:
        raise ImportProblems(
            [_problem(where, "holds a NUL character, a non-finite number or deep nesting")]
        )
    try:
        return Document.model_validate(document).workflow
    except ValidationError as exc:
        problems = [
            _problem(".".join(str(part) for part in error["loc"]) or "document", error["msg"])
            for error in exc.errors()
        ]
        raise ImportProblems(problems) from None


def _check_parts(doc: WorkflowDoc) -> tuple[list[dict], list[dict], list[dict]]:
    """Resolve references and check every part against the registries.
    Returns (problems, nodes, triggers) with the references resolved."""
    resolve = _Resolver()
    problems: list[dict] = []
    seen: set[str] = set()
    nodes = []
    for index, node in enumerate(doc.nodes):
        where = f"workflow.nodes.{index}"
        if node.node_id in seen:
            problems.append(
                _problem(f"{where}.node_id", f"{node.node_id!r} is used twice", node.node_id)
            )
        seen.add(node.node_id)
        resolve.where, resolve.node = f"{where}.configuration", node.node_id
        configuration = _map_configuration(
            node.configuration, _NODE_REFS.get(node.node_type), resolve
        )
        fields = config_errors(node.node_type, configuration)
        if not fields:
            # What the editors refuse at save (template checks, the type's
            # own: the webhook URL's form and literal addresses, no DNS).
            fields = node_problems(node.node_type, configuration)
        for field, messages in fields.items():
            path = where + (".node_type" if field == "node_type" else f".configuration.{field}")
            problems.append(_problem(path, "; ".join(messages), node.node_id))
        nodes.append({**node.model_dump(), "configuration": configuration})
    for index, edge in enumerate(doc.edges):
        for end in ("source", "target"):
            if getattr(edge, end) not in seen:
                problems.append(
                    _problem(
                        f"workflow.edges.{index}.{end}",
                        f"{getattr(edge, end)!r} is not a step of this workflow",
                    )
                )
        if edge.source == edge.target:
            problems.append(
                _problem(f"workflow.edges.{index}", "a step cannot connect to itself", edge.source)
            )
    triggers = []
    for index, trigger in enumerate(doc.triggers):
        resolve.where, resolve.node = f"workflow.triggers.{index}.configuration", None
        configuration = _map_configuration(
            trigger.configuration, _TRIGGER_REFS.get(trigger.trigger_type), resolve
        )
        for field, messages in trigger_config_errors(trigger.trigger_type, configuration).items():
            path = f"workflow.triggers.{index}" + (
                ".trigger_type" if field == "trigger_type" else f".configuration.{field}"
            )
            problems.append(_problem(path, "; ".join(messages)))
        triggers.append({**trigger.model_dump(), "configuration": configuration})
    for index, goal in enumerate(doc.goals):
        if goal.node is not None and goal.node not in seen:
            problems.append(
                _problem(
                    f"workflow.goals.{index}.node", f"{goal.node!r} is not a step of this workflow"
                )
            )
    return resolve.problems + problems, nodes, triggers


def import_workflow(document: Any, user=None, *, name: str | None = None) -> Workflow:
    """Create a new draft workflow from a document; commits.

    Raises :class:`ImportProblems` (nothing created) when the document has
    problems. ``name`` overrides the document's name."""
    doc = parse_document(document)
    try:
        problems, nodes, triggers = _check_parts(doc)
        if problems:
            raise ImportProblems(problems)
        workflow = Workflow(
            name=(name or "").replace("\x00", "").strip()[:200] or doc.name,
            description=doc.description,
            status="draft",
            created_by_id=getattr(user, "id", None),
        )
        db.session.add(workflow)
        db.session.flush()
        definition = {
            "settings": doc.settings.model_dump(),
            "nodes": nodes,
            "edges": [edge.model_dump() for edge in doc.edges],
            "triggers": triggers,
        }
        apply_definition(workflow, definition)
        for goal in doc.goals:
            node = workflow.node_by_key(goal.node) if goal.node else None
            db.session.add(
                WorkflowGoal(
                    workflow_id=workflow.id,
                    name=goal.name,
                    goal_node_id=node.id if node is not None else None,
                    goal_value=goal.goal_value,
                )
            )
        record("workflow.imported", workflow)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return workflow
