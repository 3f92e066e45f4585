"""Workflows: CRUD, activate, pause, duplicate, analytics, executions,
flow visualization and the API trigger (docs/CONTRACT.md)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from flask import g
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.access import get_or_404
from app.api.core import Input, endpoint
from app.api.errors import ApiError, refused, validation_error
from app.api.executions import ExecutionFilters, executions_page
from app.api.graph import referenced
from app.api.pagination import PageQuery, page_of, paginate
from app.api.schemas.automation import (
    AnalyticsOut,
    ExecutionOut,
    FlowVisualization,
    TriggerRun,
    WorkflowCreate,
    WorkflowDetail,
    WorkflowOut,
    WorkflowUpdate,
)
from app.api.schemas.batch import TriggerBatchOut, TriggerItem
from app.automation.analytics import AnalyticsCalculator
from app.automation.crm.errors import CrmError
from app.automation.graph.validation import WorkflowInvalid
from app.automation.lifecycle import publishing as lifecycle
from app.automation.lifecycle import workflow_ops
from app.automation.lifecycle.publishing import ApprovalRequired
from app.automation.lifecycle.workflow_ops import activate_and_enroll
from app.automation.lifecycle.workflow_ops import duplicate_workflow as duplicate
from app.automation.triggers.helpers import (
    AlreadyEnrolled,
    IdempotencyConflict,
    TriggerNotAllowed,
    contact_by_email_to_start,
    start_in_one_statement,
    trigger_api,
)
from app.clock import now
from app.extensions import db
from app.models import Contact, Workflow

TAG = "Workflows"
DETAIL = "/automation/workflows/<int:workflow_id>/"


class WorkflowQuery(PageQuery):
    status: Literal["draft", "active", "paused", "archived"] | None = None


class PeriodQuery(Input):
    start: date | None = Field(default=None, description="YYYY-MM-DD; default: 30 days ago")
    end: date | None = Field(default=None, description="YYYY-MM-DD; default: today")


def load_workflow(workflow_id: int) -> Workflow:
    """The workflow with its graph loaded in three queries, not one per row."""
    return get_or_404(
        Workflow,
        workflow_id,
        selectinload(Workflow.triggers),
        selectinload(Workflow.nodes),
        selectinload(Workflow.edges),
        what="workflow",
    )


@endpoint(
    "/automation/workflows/",
    tag=TAG,
    summary="List workflows",
    query=WorkflowQuery,
    response=page_of(WorkflowOut),
)
def list_workflows(query: WorkflowQuery):
    stmt = select(Workflow)
    if query.status:
        stmt = stmt.where(Workflow.status == query.status)
    return paginate(stmt, Workflow.id, query, newest_first=True)


@endpoint(
    "/automation/workflows/",
    "POST",
    tag=TAG,
    summary="Create a workflow (a draft)",
    body=WorkflowCreate,
    response=WorkflowDetail,
    status=201,
)
def create_workflow(body: WorkflowCreate):
    """The name's spaces are collapsed; a name of spaces only is refused."""
    fields = body.model_dump(exclude={"status"})
    name, description = fields.pop("name"), fields.pop("description")
    try:
        workflow = workflow_ops.create_workflow(name, description, g.user, **fields)
    except workflow_ops.WorkflowOpError as exc:
        db.session.rollback()
        raise op_error(exc) from None
    return load_workflow(workflow.id)


@endpoint(
    DETAIL,
    tag=TAG,
    summary="Get a workflow with its triggers, nodes and edges",
    response=WorkflowDetail,
)
def get_workflow(workflow_id: int):
    return load_workflow(workflow_id)


@endpoint(
    DETAIL,
    "PATCH",
    tag=TAG,
    summary="Update a workflow's name, description or settings",
    body=WorkflowUpdate,
    response=WorkflowDetail,
    errors=(409,),
)
def update_workflow(workflow_id: int, body: WorkflowUpdate):
    """``status`` archives a workflow (an active one must be paused first)
    or returns an archived one to draft; activate and pause have their own
    endpoints."""
    workflow = load_workflow(workflow_id)
    changes = body.model_dump(exclude_unset=True)
    try:
        # The same operation as the builder's settings panel.
        workflow_ops.update_workflow(workflow, changes, via="API", user=g.get("user"))
    except workflow_ops.WorkflowOpError as exc:
        db.session.rollback()
        raise op_error(exc) from None
    return load_workflow(workflow_id)


@endpoint(DETAIL, "DELETE", tag=TAG, summary="Delete a workflow", status=204, errors=(409,))
def delete_workflow(workflow_id: int):
    """An active workflow is refused (409): contacts are inside it and its
    triggers would stop silently; pausing first makes that deliberate."""
    workflow = get_or_404(Workflow, workflow_id, what="workflow")
    try:
        workflow_ops.delete_workflow(workflow, g.user)
    except workflow_ops.WorkflowOpError as exc:
        db.session.rollback()
        raise op_error(exc) from None
    return None


def op_error(exc: workflow_ops.WorkflowOpError) -> ApiError:
    """A refused workflow operation: 409 for the workflow's state, else 400
    naming the field."""
    if exc.conflict:
        fields = {exc.field: [exc.detail]} if exc.field and exc.detail else None
        return ApiError(409, "conflict", exc.message, fields=fields)
    return validation_error({exc.field or "__root__": [exc.message]})


@endpoint(
    DETAIL + "activate/",
    "POST",
    tag=TAG,
    summary="Validate and activate (publish) a workflow",
    response=WorkflowDetail,
    errors=(409, 422),
)
def activate_workflow(workflow_id: int):
    """422 ``invalid_workflow`` with ``problems`` (``node``, ``message``)
    when the graph cannot run; 403 when the firm requires an admin's
    approval; 409 for an archived workflow.

    A branching step (``condition``: ``yes``/``no``; ``wait_condition``:
    ``yes``/``timeout``; ``split``: one ``variant`` per variant) needs at
    least one outgoing edge; with none, its problem names the step and
    lists the outputs to connect in ``ports``. An output left unconnected
    ends the execution there (``completed``), as any step without an
    outgoing edge does."""
    workflow = load_workflow(workflow_id)
    try:
        # Commits; then enrolls existing contacts when the workflow asks to.
        activate_and_enroll(workflow, user=g.user)
    except ApprovalRequired as exc:
        # Before WorkflowInvalid, of which it is a kind.
        db.session.rollback()
        raise ApiError(403, "approval_required", str(exc)) from None
    except WorkflowInvalid as exc:
        db.session.rollback()
        raise ApiError(
            422,
            "invalid_workflow",
            f"the workflow cannot be activated: {len(exc.problems)} problem(s)",
            problems=exc.problems,
        ) from None
    except ValueError as exc:
        db.session.rollback()
        raise ApiError(409, "conflict", str(exc)) from None
    return load_workflow(workflow_id)


@endpoint(
    DETAIL + "pause/",
    "POST",
    tag=TAG,
    summary="Pause an active workflow",
    response=WorkflowDetail,
    errors=(409,),
)
def pause_workflow(workflow_id: int):
    """New contacts stop entering; executions inside wait where they are."""
    workflow = load_workflow(workflow_id)
    try:
        lifecycle.pause_workflow(workflow, g.user)
    except ValueError as exc:
        db.session.rollback()
        raise ApiError(409, "conflict", str(exc)) from None
    db.session.commit()
    return load_workflow(workflow_id)


@endpoint(
    DETAIL + "duplicate/",
    "POST",
    tag=TAG,
    summary="Copy a workflow as a new draft",
    response=WorkflowDetail,
    status=201,
)
def duplicate_workflow(workflow_id: int):
    """Same graph, triggers, goals and settings; no executions or versions."""
    copy = duplicate(load_workflow(workflow_id), user=g.user)
    return load_workflow(copy.id)


@endpoint(
    DETAIL + "analytics/",
    tag=TAG,
    summary="Analytics of a workflow for a period",
    query=PeriodQuery,
    response=AnalyticsOut,
)
def workflow_analytics(workflow_id: int, query: PeriodQuery):
    """Computed for ``start``..``end`` (inclusive) and stored."""
    workflow = get_or_404(Workflow, workflow_id, what="workflow")
    end = query.end or now().date()
    start = query.start or end - timedelta(days=30)
    if end < start:
        raise validation_error({"end": ["must be on or after start"]})
    return AnalyticsCalculator.calculate_workflow_analytics(workflow, start, end)


@endpoint(
    DETAIL + "executions/",
    tag=TAG,
    summary="Executions of a workflow",
    query=ExecutionFilters,
    response=page_of(ExecutionOut),
)
def workflow_executions(workflow_id: int, query: ExecutionFilters):
    get_or_404(Workflow, workflow_id, what="workflow")
    return executions_page(query, workflow_id)


@endpoint(
    DETAIL + "flow_visualization/",
    tag=TAG,
    summary="Visits, drop-off and transitions per node and edge",
    response=FlowVisualization,
)
def workflow_flow_visualization(workflow_id: int):
    workflow = load_workflow(workflow_id)
    return AnalyticsCalculator.get_flow_visualization_data(workflow)


@endpoint(
    DETAIL + "trigger/",
    "POST",
    tag=TAG,
    summary="Start an execution for a contact (api/manual trigger)",
    body=TriggerRun,
    response=ExecutionOut,
    status=201,
    errors=(409, 422),
    headers={"Idempotency-Key": "a repeat with the same key returns the same execution"},
    batch=(TriggerItem, TriggerBatchOut),
)
def trigger_workflow(workflow_id: int, body: TriggerRun | list):
    """The workflow must be active and have an active ``api`` or ``manual``
    trigger (else 409). Name the contact by ``contact_id``, or by ``email``:
    the firm's contact with that address, made when there is none.

    Batch form: a JSON array of up to 1,000 ``{"contact_id", "context",
    "idempotency_key"}`` items, answered 200 with one result per item in
    order (``status`` 201 started, 200 a repeat of its key, or the item's
    error: 422 unknown contact, 409 already inside or a key used for
    another contact). A batch counts once against the rate limit."""
    from flask import request

    if isinstance(body, list):
        from app.api.batch_views import trigger_batch

        return trigger_batch(load_workflow(workflow_id), body)

    key = (request.headers.get("Idempotency-Key") or "").strip() or None
    if (body.contact_id is None) == (body.email is None):
        raise validation_error({"contact_id": ["give either contact_id or email"]})
    contact_id = body.contact_id
    if contact_id is None:
        try:
            contact_id = contact_by_email_to_start(load_workflow(workflow_id), body.email)
        except TriggerNotAllowed as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        except CrmError as exc:
            db.session.rollback()
            raise refused(exc) from None
    started = start_in_one_statement(g.user.firm_id, workflow_id, contact_id, body.context, key)
    if started is not None:
        return started  # the common case; anything else takes the full path
    workflow = load_workflow(workflow_id)
    referenced(Contact, contact_id, "contact_id")
    try:
        return trigger_api(workflow, contact_id, body.context, key)
    except (TriggerNotAllowed, AlreadyEnrolled, IdempotencyConflict) as exc:
        raise ApiError(409, "conflict", str(exc)) from None
