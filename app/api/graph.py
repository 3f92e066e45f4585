"""Triggers, nodes and edges of workflows (seed endpoints)."""

from __future__ import annotations

from flask import g, jsonify
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.access import get_or_404
from app.api.core import DbId, dump, endpoint, max_id_of
from app.api.errors import validation_error
from app.api.graph_checks import EDGE_FIELDS, api_error, node_warnings_of
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
from app.automation.graph import editing
from app.automation.graph.editing import GraphError
from app.extensions import db
from app.models import Workflow, WorkflowEdge, WorkflowNode, WorkflowTrigger

VIA = "API"  # undo entries made here read "API: add d" (graph/editing.py)


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
    """The configuration is validated against the trigger type's schema.
    Triggers are the draft, like nodes: on an active workflow a new, changed
    or deleted trigger counts once the workflow is published again."""
    workflow = referenced(Workflow, body.workflow, "workflow")
    try:
        trigger = editing.add_trigger(
            workflow,
            body.trigger_type,
            body.configuration,
            is_active=body.is_active,
            via=VIA,
            user=g.get("user"),
        )
    except GraphError as exc:
        raise api_error(exc) from None
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
    """Edits the draft: an active workflow keeps starting by the published
    trigger until it is published again (approved, where that is required)."""
    trigger = get_or_404(WorkflowTrigger, trigger_id, what="trigger")
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    try:
        editing.update_trigger(trigger.workflow, trigger, changes, via=VIA, user=g.get("user"))
    except GraphError as exc:
        raise api_error(exc) from None
    db.session.commit()
    return trigger


@endpoint(T_ONE, "DELETE", tag="Triggers", summary="Delete a trigger", status=204)
def delete_trigger(trigger_id: int):
    trigger = get_or_404(WorkflowTrigger, trigger_id, what="trigger")
    editing.delete_trigger(trigger.workflow, trigger, via=VIA, user=g.get("user"))
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
    workflow = referenced(Workflow, body.workflow, "workflow")
    try:
        node = editing.add_node(
            workflow,
            body.node_type,
            body.position_x,
            body.position_y,
            node_id=body.node_id,
            label=body.label,
            configuration=body.configuration,
            via=VIA,
            user=g.get("user"),
        )
    except GraphError as exc:
        raise api_error(exc) from None
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
    try:
        editing.update_node(node.workflow, node, changes, via=VIA, user=g.get("user"))
    except GraphError as exc:
        raise api_error(exc) from None
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
    try:
        editing.delete_nodes(node.workflow, [node], via=VIA, user=g.get("user"))
    except GraphError as exc:
        raise api_error(exc) from None
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
    if body.workflow is not None and source.workflow_id != body.workflow:
        message = "the nodes belong to another workflow"
        raise validation_error({"workflow": [message]}, status=422, message=f"workflow: {message}")
    try:
        edge = editing.add_edge(
            source.workflow,
            source,
            editing.port_key(body.condition_type, body.condition_config),
            target,
            condition_config=body.condition_config,
            label=body.label,
            via=VIA,
            user=g.get("user"),
        )
    except GraphError as exc:
        raise api_error(exc, EDGE_FIELDS) from None
    db.session.commit()
    return edge


@endpoint(E_ONE, tag="Edges", summary="Get an edge", response=EdgeOut)
def get_edge(edge_id: int):
    return get_or_404(WorkflowEdge, edge_id, what="edge")


@endpoint(E_ONE, "DELETE", tag="Edges", summary="Delete an edge", status=204)
def delete_edge(edge_id: int):
    edge = get_or_404(WorkflowEdge, edge_id, what="edge")
    editing.delete_edge(edge.workflow, edge, via=VIA, user=g.get("user"))
    db.session.commit()
