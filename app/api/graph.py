"""Triggers, nodes and edges of workflows (seed endpoints)."""

from __future__ import annotations

from flask import g, jsonify
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.access import get_or_404
from app.api.core import DbId, dump, endpoint, max_id_of
from app.api.errors import validation_error
from app.api.graph_checks import (
    check_edge,
    check_node,
    check_node_key_free,
    check_trigger,
    node_warnings_of,
    refuse_stranding,
)
from app.api.pagination import PageQuery, page_of, paginate
from app.api.schemas.automation import (
    EdgeCreate,
    EdgeOut,
    NodeCreate,
    NodeOut,
    NodeUpdate,
    TriggerCreate,
    TriggerOut,
    TriggerUpdate,
)
from app.automation.graph import edit_history as history
from app.automation.graph.validation import MAX_NODES
from app.extensions import db
from app.models import Workflow, WorkflowEdge, WorkflowNode, WorkflowTrigger
from app.models.audit import record


class ByWorkflow(PageQuery):
    workflow: DbId | None = None


def referenced(model, object_id: int | None, field: str, *options):
    """A row named in a request body; another firm's is simply not found (422)."""
    if object_id is None:
        return None
    obj = None
    if 0 < object_id <= max_id_of(model.id):
        stmt = select(model).where(model.id == object_id)
        if options:
            stmt = stmt.options(*options)
        obj = db.session.scalars(stmt).first()
    if obj is None:
        raise validation_error({field: [f"no such {field.replace('_', ' ')}"]}, status=422)
    return obj


def _changed(workflow_id: int, label: str, before: dict, after: dict) -> None:
    """API edits go in the builder's undo history like the canvas's
    (app/automation/graph/edit_history.py), labelled as made through the API."""
    history.record_change(workflow_id, f"API: {label}", before, after, g.get("user"))


def _list(model, query: ByWorkflow):
    stmt = select(model)
    if query.workflow is not None:
        stmt = stmt.where(model.workflow_id == query.workflow)
    return paginate(stmt, model.id, query)


# --- triggers ----------------------------------------------------------------

T_LIST = "/automation/triggers/"
T_ONE = "/automation/triggers/<int:trigger_id>/"


@endpoint(
    T_LIST, tag="Triggers", summary="List triggers", query=ByWorkflow, response=page_of(TriggerOut)
)
def list_triggers(query: ByWorkflow):
    return _list(WorkflowTrigger, query)


@endpoint(
    T_LIST,
    "POST",
    tag="Triggers",
    summary="Add a trigger to a workflow",
    body=TriggerCreate,
    response=TriggerOut,
    status=201,
    errors=(422,),
)
def create_trigger(body: TriggerCreate):
    """The configuration is validated against the trigger type's schema."""
    referenced(Workflow, body.workflow, "workflow")
    check_trigger(body.trigger_type, body.configuration)
    trigger = WorkflowTrigger(
        workflow_id=body.workflow,
        trigger_type=body.trigger_type,
        configuration=body.configuration,
        is_active=body.is_active,
    )
    db.session.add(trigger)
    db.session.flush()
    record("trigger.created", trigger, data={"workflow": body.workflow, "type": body.trigger_type})
    key = str(trigger.id)
    _changed(
        body.workflow,
        f"add trigger {body.trigger_type}",
        {"triggers": {key: None}},
        {"triggers": {key: history.trigger_state(trigger)}},
    )
    db.session.commit()
    return trigger


@endpoint(T_ONE, tag="Triggers", summary="Get a trigger", response=TriggerOut)
def get_trigger(trigger_id: int):
    return get_or_404(WorkflowTrigger, trigger_id, what="trigger")


@endpoint(
    T_ONE,
    "PATCH",
    tag="Triggers",
    summary="Update a trigger",
    body=TriggerUpdate,
    response=TriggerOut,
    errors=(422,),
)
def update_trigger(trigger_id: int, body: TriggerUpdate):
    trigger = get_or_404(WorkflowTrigger, trigger_id, what="trigger")
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    check_trigger(
        changes.get("trigger_type", trigger.trigger_type),
        changes.get("configuration", trigger.configuration or {}),
    )
    old = history.trigger_state(trigger)
    for name, value in changes.items():
        setattr(trigger, name, value)
    record("trigger.updated", trigger, data={"fields": sorted(changes)})
    key = str(trigger.id)
    _changed(
        trigger.workflow_id,
        f"change trigger {trigger.trigger_type}",
        {"triggers": {key: old}},
        {"triggers": {key: history.trigger_state(trigger)}},
    )
    db.session.commit()
    return trigger


@endpoint(T_ONE, "DELETE", tag="Triggers", summary="Delete a trigger", status=204)
def delete_trigger(trigger_id: int):
    trigger = get_or_404(WorkflowTrigger, trigger_id, what="trigger")
    record("trigger.deleted", trigger, data={"workflow": trigger.workflow_id})
    _changed(
        trigger.workflow_id,
        f"remove trigger {trigger.trigger_type}",
        {"triggers": {str(trigger.id): history.trigger_state(trigger)}},
        {"triggers": {str(trigger.id): None}},
    )
    db.session.delete(trigger)
    db.session.commit()


# --- nodes -------------------------------------------------------------------

N_LIST = "/automation/nodes/"
N_ONE = "/automation/nodes/<int:node_pk>/"


@endpoint(N_LIST, tag="Nodes", summary="List nodes", query=ByWorkflow, response=page_of(NodeOut))
def list_nodes(query: ByWorkflow):
    return _list(WorkflowNode, query)


@endpoint(
    N_LIST,
    "POST",
    tag="Nodes",
    summary="Add a node to a workflow",
    body=NodeCreate,
    response=NodeOut,
    status=201,
    errors=(409, 422),
)
def create_node(body: NodeCreate):
    """The configuration is validated by the node type's schema (422 naming
    the field); a ``node_id`` already used in the workflow is a 409. What
    is saved but may not work yet (a webhook host that does not resolve
    now) comes back in ``warnings``, keyed like errors."""
    from sqlalchemy import func

    referenced(Workflow, body.workflow, "workflow")
    check_node(body.node_type, body.configuration)
    check_node_key_free(body.workflow, body.node_id)
    # One small request at a time must not grow a graph past what
    # activation, import and the builder accept (pages slow down with size).
    count = select(func.count()).where(WorkflowNode.workflow_id == body.workflow)
    if db.session.scalar(count) >= MAX_NODES:
        message = f"a workflow may have at most {MAX_NODES} steps"
        raise validation_error({"workflow": [message]}, status=422)
    node = WorkflowNode(workflow_id=body.workflow, **body.model_dump(exclude={"workflow"}))
    db.session.add(node)
    db.session.flush()
    record("node.created", node, data={"workflow": body.workflow, "node_id": node.node_id})
    _changed(
        body.workflow,
        f"add {node.label or node.node_id}",
        {"nodes": {node.node_id: None}},
        {"nodes": {node.node_id: history.node_state(node)}},
    )
    # Serialized before the commit, which expires the row: reading it back
    # afterwards would cost one more query per create.
    data = dump(NodeOut, node)
    db.session.commit()
    # After the commit: a warning may take a DNS lookup, and no
    # transaction should wait on one.
    data["warnings"] = node_warnings_of(data["node_type"], data["configuration"])
    response = jsonify(data)
    response.status_code = 201
    return response


@endpoint(N_ONE, tag="Nodes", summary="Get a node", response=NodeOut)
def get_node(node_pk: int):
    return get_or_404(WorkflowNode, node_pk, what="node")


@endpoint(
    N_ONE,
    "PATCH",
    tag="Nodes",
    summary="Update a node",
    body=NodeUpdate,
    response=NodeOut,
    errors=(409, 422),
)
def update_node(node_pk: int, body: NodeUpdate):
    """Renaming the ``node_id`` of a node contacts are waiting on in an
    active workflow is refused (409 with the count). A changed
    configuration's ``warnings`` are as on create."""
    node = get_or_404(WorkflowNode, node_pk, selectinload(WorkflowNode.workflow), what="node")
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    checked = "node_type" in changes or "configuration" in changes
    if checked:
        check_node(
            changes.get("node_type", node.node_type),
            changes.get("configuration", node.configuration or {}),
        )
    renamed = changes.get("node_id", node.node_id) != node.node_id
    if renamed:
        check_node_key_free(node.workflow_id, changes["node_id"], exclude_pk=node.id)
        refuse_stranding(node, "rename")
        # A new key renames its connections' keys too: the whole graph.
        before = history.snapshot(node.workflow)
    else:
        before = {"nodes": {node.node_id: history.node_state(node)}}
    label = f"change {node.label or node.node_id}"
    for name, value in changes.items():
        setattr(node, name, value)
    record("node.updated", node, data={"fields": sorted(changes)})
    if renamed:
        history.record_edit(node.workflow, f"API: {label}", before, g.get("user"))
    else:
        _changed(
            node.workflow_id, label, before, {"nodes": {node.node_id: history.node_state(node)}}
        )
    db.session.commit()
    data = dump(NodeOut, node)
    if checked:
        db.session.rollback()  # a warning may take a DNS lookup: no transaction waits
        data["warnings"] = node_warnings_of(data["node_type"], data["configuration"])
    return jsonify(data)


@endpoint(
    N_ONE, "DELETE", tag="Nodes", summary="Delete a node (and its edges)", status=204, errors=(409,)
)
def delete_node(node_pk: int):
    """Refused with 409 and the count of contacts affected while executions
    of an active workflow are at this node; pause the workflow first."""
    node = get_or_404(WorkflowNode, node_pk, selectinload(WorkflowNode.workflow), what="node")
    refuse_stranding(node, "delete")
    workflow = node.workflow
    before = history.snapshot(workflow)
    edges = db.session.scalars(
        select(WorkflowEdge).where(
            (WorkflowEdge.source_node_id == node.id) | (WorkflowEdge.target_node_id == node.id)
        )
    ).all()
    for edge in edges:
        db.session.delete(edge)
    record("node.deleted", node, data={"workflow": node.workflow_id, "node_id": node.node_id})
    label = f"API: delete {node.label or node.node_id}"
    db.session.delete(node)
    db.session.flush()
    db.session.expire(workflow, ["nodes", "edges"])
    history.record_edit(workflow, label, before, g.get("user"))
    db.session.commit()


# --- edges -------------------------------------------------------------------

E_LIST = "/automation/edges/"
E_ONE = "/automation/edges/<int:edge_id>/"


@endpoint(E_LIST, tag="Edges", summary="List edges", query=ByWorkflow, response=page_of(EdgeOut))
def list_edges(query: ByWorkflow):
    return _list(WorkflowEdge, query)


@endpoint(
    E_LIST,
    "POST",
    tag="Edges",
    summary="Connect two nodes",
    body=EdgeCreate,
    response=EdgeOut,
    status=201,
    errors=(422,),
)
def create_edge(body: EdgeCreate):
    """Refused with 422 and the reason when the nodes are in different
    workflows, the ``condition_type`` is not an output of the source node,
    or that output is already connected."""
    if body.workflow is not None:
        referenced(Workflow, body.workflow, "workflow")
    source = referenced(WorkflowNode, body.source_node, "source_node")
    target = referenced(WorkflowNode, body.target_node, "target_node")
    check_edge(source, target, body.condition_type, body.condition_config, body.workflow)
    edge = WorkflowEdge(
        workflow_id=source.workflow_id,
        source_node_id=source.id,
        target_node_id=target.id,
        condition_type=body.condition_type,
        condition_config=body.condition_config,
        label=body.label,
    )
    db.session.add(edge)
    db.session.flush()
    record(
        "edge.created",
        edge,
        data={"from": source.node_id, "to": target.node_id, "condition": body.condition_type},
    )
    key = f"{source.node_id}|{history.port_key(edge)}"
    _changed(
        source.workflow_id,
        f"connect {source.label or source.node_id} to {target.label or target.node_id}",
        {"edges": {key: None}},
        {"edges": {key: history.edge_state(edge, target.node_id)}},
    )
    db.session.commit()
    return edge


@endpoint(E_ONE, tag="Edges", summary="Get an edge", response=EdgeOut)
def get_edge(edge_id: int):
    return get_or_404(WorkflowEdge, edge_id, what="edge")


@endpoint(E_ONE, "DELETE", tag="Edges", summary="Delete an edge", status=204)
def delete_edge(edge_id: int):
    edge = get_or_404(WorkflowEdge, edge_id, what="edge")
    record("edge.deleted", edge, data={"workflow": edge.workflow_id})
    source = db.session.get(WorkflowNode, edge.source_node_id)
    target = db.session.get(WorkflowNode, edge.target_node_id)
    if source is not None and target is not None:
        key = f"{source.node_id}|{history.port_key(edge)}"
        _changed(
            edge.workflow_id,
            f"disconnect {source.label or source.node_id}",
            {"edges": {key: history.edge_state(edge, target.node_id)}},
            {"edges": {key: None}},
        )
    db.session.delete(edge)
    db.session.commit()
