"""Edits of a workflow's graph: the one set of operations the builder
canvas and inspector (``app/web/builder_*.py``) and the API
(``app/api/graph.py``) call.

Each operation takes rows already loaded through the tenancy-scoped
session and plain values, checks them (configurations through
``node_checks.node_problems``, outputs of the source step, a step id
free in its workflow, contacts waiting at a step of an active workflow),
changes the rows, writes one audit entry (``node.created``,
``node.updated``, ``node.deleted``, ``edge.created``, ``edge.deleted``)
and one undo entry (``edit_history.py``) and leaves the commit to the
caller. Triggers likewise (``trigger.created``, ``trigger.updated``,
``trigger.deleted``). A refusal is a :class:`GraphError` naming the field.

The undo label is one wording for both editors: ``"Delete b"`` from the
builder, ``"API: delete b"`` through the API (``via="API"``).

The primitives (``place_node``, ``connect``, ``remove_node`` ...) change
rows only; the builder's composite edits (insert after a step, paste)
are built from them inside :func:`recorded`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select

from app.automation.graph import edit_history as history
from app.automation.graph.node_checks import node_problems
from app.automation.graph.validation import MAX_NODES
from app.automation.nodes.registry import (
    NodeType,
    Port,
    UnknownNodeType,
    config_errors,
    get_node_type,
)
from app.automation.triggers.registry import TRIGGER_TYPES, trigger_config_errors
from app.extensions import db
from app.models import Workflow, WorkflowEdge, WorkflowExecution, WorkflowNode, WorkflowTrigger
from app.models.audit import record
from app.models.execution import ACTIVE_STATUSES

# Keep dropped nodes on a sane plane: a typo in a request must not put a
# node a million pixels away.
COORD_LIMIT = history.COORD_LIMIT
NODE_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
# What an edit may change on a node.
NODE_FIELDS = ("node_id", "node_type", "label", "position_x", "position_y", "configuration")
_UNSET: Any = object()


class GraphError(ValueError):
    """An edit the graph refuses. ``field`` names the offending input,
    ``fields`` every field's messages (``{field: [message]}`` by default);
    ``status`` is 422, or 409 for a conflict (``code`` says which)."""

    def __init__(
        self,
        message: str,
        field: str = "__root__",
        *,
        status: int = 422,
        code: str = "validation_error",
        fields: dict[str, list[str]] | None = None,
        **extra: Any,
    ):
        super().__init__(message)
        self.field = field
        self.status = status
        self.code = code
        self.fields = fields if fields is not None else {field: [message]}
        self.extra = extra


def clamp(value: float) -> float:
    return max(-COORD_LIMIT, min(COORD_LIMIT, float(value)))


def label_of(text: str, via: str | None = None) -> str:
    """The undo label: ``"Delete b"``, or ``"API: delete b"`` for ``via="API"``."""
    return f"{via}: {text}" if via else text[:1].upper() + text[1:]


def name_of(node: WorkflowNode) -> str:
    return node.label or node.node_id


@contextmanager
def recorded(
    workflow: Workflow, text: str = "", *, via: str | None = None, user=None
) -> Iterator[SimpleNamespace]:
    """Record what the block changes as one undo entry (a whole snapshot
    before and after: for edits touching several rows). The block may set
    the label's ``text`` once it knows it."""
    before = history.snapshot(workflow)
    edit = SimpleNamespace(text=text)
    yield edit
    history.record_edit(workflow, label_of(edit.text, via), before, user)


# --- checks --------------------------------------------------------------------


def configuration_problems(
    node_type: str, configuration: dict, *, schema_errors: set[str] | None = None
) -> dict[str, list[str]]:
    """The schema's refusals, then template syntax and the type's own checks
    (``node_checks.node_problems``), by configuration field."""
    problems: dict[str, list[str]] = {}
    for field, messages in config_errors(node_type, configuration).items():
        problems.setdefault(field, []).extend(messages)
    known = set(problems) | set(schema_errors or ())
    for field, messages in node_problems(node_type, configuration, schema_errors=known).items():
        problems.setdefault(field, []).extend(messages)
    return problems


def _prefixed(fields: Mapping[str, list[str]], prefix: str) -> dict[str, list[str]]:
    return {
        (prefix if key == "__root__" else f"{prefix}.{key}"): list(messages)
        for key, messages in fields.items()
    }


def check_node_type(node_type: str) -> type[NodeType]:
    try:
        return get_node_type(node_type)
    except UnknownNodeType:
        raise GraphError(f"unknown node type {node_type!r}", "node_type") from None


def check_configuration(node_type: str, configuration: dict) -> None:
    """422 naming ``configuration.<field>`` for a configuration its type refuses."""
    check_node_type(node_type)
    schema = _prefixed(config_errors(node_type, configuration), "configuration")
    # Template syntax and the type's own checks only once the schema passes.
    fields = schema or _prefixed(node_problems(node_type, configuration), "configuration")
    if fields:
        names = ", ".join(sorted(fields))
        raise GraphError(f"invalid input: {names}", sorted(fields)[0], fields=fields)


def check_node_id_free(workflow_id: int, node_id: str, exclude_pk: int | None = None) -> None:
    """409: a node_id is a key, unique within its workflow (docs/CONTRACT.md)."""
    stmt = select(WorkflowNode.id).where(
        WorkflowNode.workflow_id == workflow_id, WorkflowNode.node_id == node_id
    )
    if exclude_pk is not None:
        stmt = stmt.where(WorkflowNode.id != exclude_pk)
    if db.session.scalars(stmt).first() is not None:
        raise GraphError(
            f"node_id {node_id!r} is already used in this workflow",
            "node_id",
            status=409,
            code="conflict",
            fields={"node_id": ["already used in this workflow"]},
        )


def waiting_at(workflow_id: int, node_ids: list[str]) -> dict[str, int]:
    """Contacts whose execution is running or waiting at each of these
    nodes (one query; a node nobody waits at is left out)."""
    stmt = (
        select(WorkflowExecution.current_node, func.count())
        .where(
            WorkflowExecution.workflow_id == workflow_id,
            WorkflowExecution.current_node.in_(node_ids),
            WorkflowExecution.status.in_(ACTIVE_STATUSES),
        )
        .group_by(WorkflowExecution.current_node)
    )
    return {key: int(count) for key, count in db.session.execute(stmt)}


def refuse_stranding(workflow: Workflow, nodes: list[WorkflowNode], action: str) -> None:
    """409 when removing or renaming nodes of an active workflow would
    leave contacts waiting on a node that no longer exists; a draft or a
    paused workflow may be edited freely."""
    if workflow.status != "active":
        return
    waiting = waiting_at(workflow.id, [node.node_id for node in nodes])
    for node in nodes:
        count = waiting.get(node.node_id, 0)
        if not count:
            continue
        raise GraphError(
            f"{count} contact(s) are at {node.node_id!r}; pause the workflow "
            f"(or publish with a mapping) before you {action} it",
            "node",
            status=409,
            code="contacts_waiting",
            fields={},
            count=count,
        )


# --- primitives: rows only -------------------------------------------------------


def node_ports(node: WorkflowNode) -> tuple[Port, ...]:
    """The node's outputs; a split whose variants do not parse has none yet."""
    try:
        kind = get_node_type(node.node_type)
    except UnknownNodeType:
        return ()
    try:
        config = kind.parse_config(node.configuration)
    except ValidationError:
        config = None
    return kind.ports(config)


def unique_node_id(workflow: Workflow, base: str) -> str:
    taken = {node.node_id for node in workflow.nodes}
    if base not in taken:
        return base
    n = 2
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


def port_key_of(edge: WorkflowEdge) -> str:
    return port_key(edge.condition_type, edge.condition_config)


def port_key(condition_type: str | None, condition_config: dict | None) -> str:
    if condition_type == "variant":
        return f"variant:{(condition_config or {}).get('variant')}"
    return condition_type or "next"


def place_node(
    workflow: Workflow,
    node_type: str,
    x: float,
    y: float,
    *,
    node_id: str | None = None,
    label: str | None = None,
    configuration: dict | None = None,
) -> WorkflowNode:
    """A new node row: the type's default configuration and label and a
    free id unless given. Checks the type and the size of the graph; a
    given configuration is checked by :func:`add_node`."""
    count = select(func.count()).where(WorkflowNode.workflow_id == workflow.id)
    if db.session.scalar(count) >= MAX_NODES:
        raise GraphError(f"a workflow may have at most {MAX_NODES} steps", "workflow")
    kind = check_node_type(node_type)
    node = WorkflowNode(
        workflow_id=workflow.id,
        node_id=node_id or unique_node_id(workflow, kind.key),
        node_type=kind.key,
        label=kind.label if label is None else label,
        position_x=float(x),
        position_y=float(y),
        configuration=kind.default_config() if configuration is None else configuration,
    )
    workflow.nodes.append(node)
    db.session.flush()
    return node


def move_node(node: WorkflowNode, x: float, y: float) -> None:
    node.position_x = clamp(x)
    node.position_y = clamp(y)


def remove_node(workflow: Workflow, node: WorkflowNode) -> None:
    for edge in list(workflow.edges):
        if node.id in (edge.source_node_id, edge.target_node_id):
            workflow.edges.remove(edge)
    workflow.nodes.remove(node)


def connect(
    workflow: Workflow,
    source: WorkflowNode | str,
    port: str | None,
    target: WorkflowNode | str,
    *,
    condition_config: dict | None = None,
    label: str | None = _UNSET,
) -> WorkflowEdge:
    """Connect output ``port`` of ``source`` to ``target`` (rows or their
    node_ids). The output must exist on the source's type and be free: a
    port leads to exactly one next step, so the engine never has to choose."""
    if isinstance(source, str):
        key, source = source, workflow.node_by_key(source)
        if source is None:
            raise GraphError(f"there is no step {key!r}", "source")
    if isinstance(target, str):
        key, target = target, workflow.node_by_key(target)
        if target is None:
            raise GraphError(f"there is no step {key!r}", "target")
    if source.workflow_id != target.workflow_id or source.workflow_id != workflow.id:
        raise GraphError("is a node of another workflow", "target")
    if source.id == target.id:
        raise GraphError("a step cannot connect to itself", "target")
    ports = {p.key: p for p in node_ports(source)}
    chosen = ports.get(port or "next")
    if chosen is None:
        names = ", ".join(sorted(ports)) or "none (fix its configuration first)"
        key = port or "next"
        raise GraphError(
            f"{name_of(source)} has no output {key!r} ({key!r} is not an output of "
            f"a {source.node_type} step; its outputs: {names})",
            "port",
        )
    siblings = db.session.scalars(
        select(WorkflowEdge).where(WorkflowEdge.source_node_id == source.id)
    ).all()
    if any(port_key_of(edge) == chosen.key for edge in siblings):
        raise GraphError(
            f"the output {chosen.label or 'next'!r} of {name_of(source)} "
            "is already connected; delete that connection first",
            "port",
        )
    edge = WorkflowEdge(
        workflow_id=workflow.id,
        source_node_id=source.id,
        target_node_id=target.id,
        condition_type=chosen.condition_type,
        condition_config=(
            dict(chosen.condition_config) if condition_config is None else condition_config
        ),
        label=chosen.label if label is _UNSET else label,
    )
    workflow.edges.append(edge)
    db.session.flush()
    return edge


# --- operations: checked, audited, kept for undo ---------------------------------


def add_node(
    workflow: Workflow,
    node_type: str,
    x: float = 0.0,
    y: float = 0.0,
    *,
    node_id: str | None = None,
    label: str | None = None,
    configuration: dict | None = None,
    via: str | None = None,
    user=None,
) -> WorkflowNode:
    """A new step. A given ``configuration`` is checked like the
    inspector's save; a given ``node_id`` must be free (409)."""
    if configuration is not None:
        check_configuration(node_type, configuration)
    if node_id is not None:
        check_node_id_free(workflow.id, node_id)
    node = place_node(
        workflow, node_type, x, y, node_id=node_id, label=label, configuration=configuration
    )
    node_added(workflow, node)
    history.record_change(
        workflow.id,
        label_of(f"add {name_of(node)}", via),
        {"nodes": {node.node_id: None}},
        {"nodes": {node.node_id: history.node_state(node)}},
        user,
    )
    return node


def node_added(workflow: Workflow, node: WorkflowNode) -> None:
    """The audit entry of a new step (also for the builder's composite adds)."""
    record("node.created", node, data={"workflow": workflow.id, "node_id": node.node_id})


def update_node(
    workflow: Workflow,
    node: WorkflowNode,
    changes: Mapping[str, Any],
    *,
    via: str | None = None,
    user=None,
) -> WorkflowNode:
    """Change a step's fields (``NODE_FIELDS``). A new type or
    configuration is checked; a new node_id must match the key pattern and
    be free (409), and is refused while contacts wait at the step of an
    active workflow (409). Connections follow a renamed step (they point at
    row ids)."""
    changes = {name: value for name, value in changes.items() if name in NODE_FIELDS}
    if "node_type" in changes or "configuration" in changes:
        check_configuration(
            changes.get("node_type", node.node_type),
            changes.get("configuration", node.configuration or {}),
        )
    if "node_id" in changes:
        changes["node_id"] = str(changes["node_id"]).strip()
    renamed = changes.get("node_id", node.node_id) != node.node_id
    if renamed:
        if not NODE_ID_PATTERN.match(changes["node_id"]):
            raise GraphError(
                "use lower-case letters, digits and underscores, starting with a letter",
                "node_id",
            )
        check_node_id_free(workflow.id, changes["node_id"], exclude_pk=node.id)
        refuse_stranding(workflow, [node], "rename")
    # Named as the step is called after the edit, or before when unnamed.
    text = f"change {changes.get('label') or name_of(node)}"
    if renamed:
        # A new key renames its connections' keys too: the whole graph.
        with recorded(workflow, text, via=via, user=user):
            _assign(node, changes)
    else:
        before = {"nodes": {node.node_id: history.node_state(node)}}
        _assign(node, changes)
        after = {"nodes": {node.node_id: history.node_state(node)}}
        history.record_change(workflow.id, label_of(text, via), before, after, user)
    record("node.updated", node, data={"fields": sorted(changes)})
    return node


def _assign(node: WorkflowNode, changes: Mapping[str, Any]) -> None:
    for name, value in changes.items():
        setattr(node, name, value)


def move_nodes(
    workflow: Workflow,
    positions: Mapping[str, Any],
    text: str | None = None,
    *,
    via: str | None = None,
    user=None,
) -> None:
    """Several steps moved at once (a group drag, Tidy): one undo entry."""
    with recorded(workflow, text or f"move {len(positions)} steps", via=via, user=user):
        for key, point in positions.items():
            node = workflow.node_by_key(str(key))
            if node is None:
                raise GraphError(f"there is no step {key!r}", "positions")
            if not isinstance(point, (list, tuple)) or len(point) != 2:
                raise GraphError("each position is [x, y]", "positions")
            move_node(node, point[0], point[1])


def delete_nodes(
    workflow: Workflow, nodes: list[WorkflowNode], *, via: str | None = None, user=None
) -> None:
    """Steps and their connections: one undo entry, one audit entry a step.
    Refused (409) while contacts wait at one of them in an active workflow."""
    refuse_stranding(workflow, nodes, "delete")
    text = f"delete {name_of(nodes[0])}" if len(nodes) == 1 else f"delete {len(nodes)} steps"
    with recorded(workflow, text, via=via, user=user):
        for node in nodes:
            record("node.deleted", node, data={"workflow": workflow.id, "node_id": node.node_id})
            remove_node(workflow, node)


def add_edge(
    workflow: Workflow,
    source: WorkflowNode | str,
    port: str | None,
    target: WorkflowNode | str,
    *,
    condition_config: dict | None = None,
    label: str | None = _UNSET,
    via: str | None = None,
    user=None,
) -> WorkflowEdge:
    """Connect an output of a step to another step (see :func:`connect`)."""
    edge = connect(workflow, source, port, target, condition_config=condition_config, label=label)
    source_node = db.session.get(WorkflowNode, edge.source_node_id)
    target_node = db.session.get(WorkflowNode, edge.target_node_id)
    record(
        "edge.created",
        edge,
        data={
            "from": source_node.node_id,
            "to": target_node.node_id,
            "condition": edge.condition_type,
        },
    )
    key = f"{source_node.node_id}|{port_key_of(edge)}"
    history.record_change(
        workflow.id,
        label_of(f"connect {name_of(source_node)} to {name_of(target_node)}", via),
        {"edges": {key: None}},
        {"edges": {key: history.edge_state(edge, target_node.node_id)}},
        user,
    )
    return edge


def delete_edge(
    workflow: Workflow, edge: WorkflowEdge, *, via: str | None = None, user=None
) -> None:
    record("edge.deleted", edge, data={"workflow": workflow.id})
    source = db.session.get(WorkflowNode, edge.source_node_id)
    target = db.session.get(WorkflowNode, edge.target_node_id)
    if source is not None and target is not None:
        key = f"{source.node_id}|{port_key_of(edge)}"
        history.record_change(
            workflow.id,
            label_of(f"disconnect {name_of(source)} from {name_of(target)}", via),
            {"edges": {key: history.edge_state(edge, target.node_id)}},
            {"edges": {key: None}},
            user,
        )
    if edge in workflow.edges:
        workflow.edges.remove(edge)
    else:
        db.session.delete(edge)
    db.session.flush()


# --- triggers ----------------------------------------------------------------------


def trigger_name(trigger: WorkflowTrigger) -> str:
    """A trigger's type, in words (its key when the type is gone)."""
    kind = TRIGGER_TYPES.get(trigger.trigger_type)
    return kind.label if kind else trigger.trigger_type


def check_trigger(trigger_type: str, configuration: dict | None) -> None:
    """422 naming ``trigger_type`` or ``configuration.<field>``."""
    if trigger_type not in TRIGGER_TYPES:
        raise GraphError(f"unknown trigger type {trigger_type!r}", "trigger_type")
    fields = _prefixed(trigger_config_errors(trigger_type, configuration), "configuration")
    if fields:
        names = ", ".join(sorted(fields))
        raise GraphError(f"invalid input: {names}", sorted(fields)[0], fields=fields)


def _trigger_change(
    workflow: Workflow, trigger: WorkflowTrigger, text: str, before, after, via, user
) -> None:
    key = str(trigger.id)
    history.record_change(
        workflow.id,
        label_of(f"{text} trigger {trigger_name(trigger)}", via),
        {"triggers": {key: before}},
        {"triggers": {key: after}},
        user,
    )


def add_trigger(
    workflow: Workflow,
    trigger_type: str,
    configuration: dict | None = None,
    *,
    is_active: bool = True,
    via: str | None = None,
    user=None,
) -> WorkflowTrigger:
    """A new trigger, its configuration checked against its type's schema."""
    configuration = configuration or {}
    check_trigger(trigger_type, configuration)
    trigger = WorkflowTrigger(
        workflow_id=workflow.id,
        trigger_type=trigger_type,
        configuration=configuration,
        is_active=is_active,
    )
    workflow.triggers.append(trigger)
    db.session.flush()
    record("trigger.created", trigger, data={"workflow": workflow.id, "type": trigger_type})
    _trigger_change(workflow, trigger, "add", None, history.trigger_state(trigger), via, user)
    return trigger


TRIGGER_FIELDS = ("trigger_type", "configuration", "is_active")


def update_trigger(
    workflow: Workflow,
    trigger: WorkflowTrigger,
    changes: Mapping[str, Any],
    *,
    via: str | None = None,
    user=None,
) -> WorkflowTrigger:
    """Change a trigger's type, configuration or on/off (``TRIGGER_FIELDS``),
    checked as on add. Switching it on or off alone reads "Enable/Disable
    trigger ..." in the undo history, any other change "Change trigger ..."."""
    changes = {name: value for name, value in changes.items() if name in TRIGGER_FIELDS}
    check_trigger(
        changes.get("trigger_type", trigger.trigger_type),
        changes.get("configuration", trigger.configuration or {}),
    )
    before = history.trigger_state(trigger)
    _assign(trigger, changes)
    if set(changes) == {"is_active"}:
        text = "enable" if trigger.is_active else "disable"
    else:
        text = "change"
    record("trigger.updated", trigger, data={"fields": sorted(changes)})
    _trigger_change(workflow, trigger, text, before, history.trigger_state(trigger), via, user)
    return trigger


def delete_trigger(
    workflow: Workflow, trigger: WorkflowTrigger, *, via: str | None = None, user=None
) -> None:
    record("trigger.deleted", trigger, data={"workflow": workflow.id})
    _trigger_change(workflow, trigger, "remove", history.trigger_state(trigger), None, via, user)
    if trigger in workflow.triggers:
        workflow.triggers.remove(trigger)
    else:
        db.session.delete(trigger)
    db.session.flush()
