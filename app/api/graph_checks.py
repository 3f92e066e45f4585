"""Checks made when the API saves one piece of a graph.

The whole-graph validation (``app.automation.graph.validation``) runs at
activation; these are the per-save refusals that keep a draft graph
coherent as it is built one request at a time: configurations valid for
their type (node and trigger registries, template syntax, the type's own
checks such as the webhook SSRF guard), edges that stay inside one workflow and leave from a real output
of their source, and edits that would strand contacts waiting in a live
workflow.
"""

from __future__ import annotations

from sqlalchemy import func, select

from app.api.errors import ApiError, validation_error
from app.automation.graph.node_checks import node_problems, node_warnings
from app.automation.nodes.registry import (
    UnknownNodeType,
    config_errors,
    get_node_type,
)
from app.automation.triggers.registry import TRIGGER_TYPES, trigger_config_errors
from app.extensions import db
from app.models import WorkflowEdge, WorkflowExecution, WorkflowNode
from app.models.execution import ACTIVE_STATUSES


def _prefixed(fields: dict[str, list[str]], prefix: str) -> dict[str, list[str]]:
    return {
        (prefix if key == "__root__" else f"{prefix}.{key}"): messages
        for key, messages in fields.items()
    }


def check_node(node_type: str, configuration: dict) -> None:
    """422 naming the field when a node's type or configuration is invalid."""
    try:
        get_node_type(node_type)
    except UnknownNodeType:
        raise validation_error(
            {"node_type": [f"unknown node type {node_type!r}"]}, status=422
        ) from None
    fields = _prefixed(config_errors(node_type, configuration), "configuration")
    if not fields:
        # Template syntax and the type's own checks (graph/node_checks.py).
        fields = _prefixed(node_problems(node_type, configuration), "configuration")
    if fields:
        raise validation_error(fields, status=422)


def node_warnings_of(node_type: str, configuration: dict) -> dict[str, list[str]]:
    """What a save that passed :func:`check_node` should still say (a
    webhook host that does not resolve now), keyed like its errors
    (``configuration.url``): the ``warnings`` of the answer."""
    return _prefixed(node_warnings(node_type, configuration), "configuration")


def check_trigger(trigger_type: str, configuration: dict) -> None:
    if trigger_type not in TRIGGER_TYPES:
        raise validation_error(
            {"trigger_type": [f"unknown trigger type {trigger_type!r}"]}, status=422
        )
    fields = _prefixed(trigger_config_errors(trigger_type, configuration), "configuration")
    if fields:
        raise validation_error(fields, status=422)


def check_node_key_free(workflow_id: int, node_key: str, exclude_pk: int | None = None) -> None:
    """409: a node_id is a key, unique within its workflow (docs/CONTRACT.md)."""
    stmt = select(WorkflowNode.id).where(
        WorkflowNode.workflow_id == workflow_id, WorkflowNode.node_id == node_key
    )
    if exclude_pk is not None:
        stmt = stmt.where(WorkflowNode.id != exclude_pk)
    if db.session.scalars(stmt).first() is not None:
        raise ApiError(
            409,
            "conflict",
            f"node_id {node_key!r} is already used in this workflow",
            fields={"node_id": ["already used in this workflow"]},
        )


def _port_key(condition_type: str | None, condition_config: dict) -> str:
    if condition_type == "variant":
        return f"variant:{(condition_config or {}).get('variant')}"
    return condition_type or "next"


def check_edge(
    source: WorkflowNode,
    target: WorkflowNode,
    condition_type: str | None,
    condition_config: dict,
    workflow_id: int | None = None,
) -> None:
    """422 for an edge that would break the graph, with the reason."""
    if source.workflow_id != target.workflow_id:
        raise _edge_error("target_node", "is a node of another workflow")
    if workflow_id is not None and source.workflow_id != workflow_id:
        raise _edge_error("workflow", "the nodes belong to another workflow")
    if source.id == target.id:
        raise _edge_error("target_node", "a node cannot connect to itself")
    kind = get_node_type(source.node_type)
    try:
        config = kind.parse_config(source.configuration)
    except Exception:  # an invalid stored configuration: the type's default ports
        config = None
    ports = {port.key for port in kind.ports(config)}
    key = _port_key(condition_type, condition_config)
    if key not in ports:
        outputs = ", ".join(sorted(ports)) or "none"
        raise _edge_error(
            "condition_type",
            f"{key!r} is not an output of {source.node_id!r} ({source.node_type}); "
            f"its outputs: {outputs}",
        )
    siblings = db.session.scalars(
        select(WorkflowEdge).where(WorkflowEdge.source_node_id == source.id)
    ).all()
    if any(_port_key(e.condition_type, e.condition_config) == key for e in siblings):
        raise _edge_error(
            "condition_type", f"output {key!r} of {source.node_id!r} is already connected"
        )


def _edge_error(field: str, message: str) -> ApiError:
    return validation_error({field: [message]}, status=422, message=f"{field}: {message}")


def waiting_at(workflow_id: int, node_key: str) -> int:
    """Contacts whose execution is running or waiting at this node."""
    stmt = select(func.count()).where(
        WorkflowExecution.workflow_id == workflow_id,
        WorkflowExecution.current_node == node_key,
        WorkflowExecution.status.in_(ACTIVE_STATUSES),
    )
    return int(db.session.scalar(stmt) or 0)


def refuse_stranding(node: WorkflowNode, action: str) -> None:
    """409 when removing or renaming a node of an active workflow would
    leave contacts waiting on a node that no longer exists."""
    if node.workflow.status != "active":
        return
    count = waiting_at(node.workflow_id, node.node_id)
    if count:
        raise ApiError(
            409,
            "contacts_waiting",
            f"{count} contact(s) are at {node.node_id!r}; pause the workflow "
            f"(or publish with a mapping) before you {action} it",
            count=count,
        )
