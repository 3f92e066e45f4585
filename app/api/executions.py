"""Executions: list with filters, detail with path and flow states,
cancel, retry and the flow visualization (docs/CONTRACT.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.access import get_or_404
from app.api.core import DbId, endpoint
from app.api.errors import ApiError
from app.api.pagination import PageQuery, page_of, paginate
from app.api.schemas.automation import ExecutionDetail, ExecutionOut, FlowVisualization
from app.automation.analytics import AnalyticsCalculator
from app.automation.engine.operator import cancel_execution as cancel
from app.automation.engine.operator import retry_execution as retry
from app.automation.engine.retry import why_not_resumable
from app.models import WorkflowExecution

TAG = "Executions"
ONE = "/automation/executions/<int:execution_id>/"


class ExecutionFilters(PageQuery):
    status: (
        Literal["running", "waiting", "completed", "goal_reached", "failed", "canceled"] | None
    ) = None
    contact: DbId | None = None
    start: date | None = Field(default=None, description="started on or after (YYYY-MM-DD)")
    end: date | None = Field(default=None, description="started on or before (YYYY-MM-DD)")


class ExecutionQuery(ExecutionFilters):
    workflow: DbId | None = None


def executions_page(query: ExecutionFilters, workflow_id: int | None) -> dict:
    """Newest first; one query per page (the rows carry no relations)."""
    E = WorkflowExecution
    stmt = select(E)
    if workflow_id is not None:
        stmt = stmt.where(E.workflow_id == workflow_id)
    if query.status:
        stmt = stmt.where(E.status == query.status)
    if query.contact is not None:
        stmt = stmt.where(E.contact_id == query.contact)
    if query.start:
        stmt = stmt.where(E.started_at >= datetime.combine(query.start, time.min, UTC))
    if query.end:
        stmt = stmt.where(
            E.started_at < datetime.combine(query.end + timedelta(days=1), time.min, UTC)
        )
    return paginate(stmt, E.id, query, newest_first=True)


def load_execution(execution_id: int) -> WorkflowExecution:
    return get_or_404(
        WorkflowExecution,
        execution_id,
        selectinload(WorkflowExecution.flow_states),
        what="execution",
    )


@endpoint(
    "/automation/executions/",
    tag=TAG,
    summary="List executions (filter by workflow, status, contact, dates)",
    query=ExecutionQuery,
    response=page_of(ExecutionOut),
)
def list_executions(query: ExecutionQuery):
    return executions_page(query, query.workflow)


@endpoint(
    ONE, tag=TAG, summary="Get an execution with its path and flow states", response=ExecutionDetail
)
def get_execution(execution_id: int):
    """``execution_path`` lists the node_ids in order; ``flow_states`` has
    one entry per node visit."""
    return load_execution(execution_id)


@endpoint(
    ONE + "cancel/",
    "POST",
    tag=TAG,
    summary="Cancel a running or waiting execution",
    response=ExecutionDetail,
    errors=(409,),
)
def cancel_execution(execution_id: int):
    from flask import g

    execution = load_execution(execution_id)
    if not cancel(execution, user=g.user):
        raise ApiError(409, "conflict", f"the execution is {execution.status}, not running")
    return load_execution(execution_id)


@endpoint(
    ONE + "retry/",
    "POST",
    tag=TAG,
    summary="Retry a failed execution at its failed node",
    response=ExecutionDetail,
    errors=(409,),
)
def retry_execution(execution_id: int):
    """Resumes the same execution; steps already done are not repeated."""
    from flask import g

    execution = load_execution(execution_id)
    if not retry(execution, user=g.user):
        raise ApiError(409, "conflict", why_not_resumable(execution))
    return load_execution(execution_id)


@endpoint(
    ONE + "flow_visualization/",
    tag=TAG,
    summary="The path this execution took",
    response=FlowVisualization,
)
def execution_flow_visualization(execution_id: int):
    execution = get_or_404(WorkflowExecution, execution_id, what="execution")
    return AnalyticsCalculator.get_execution_flow_visualization(execution)
