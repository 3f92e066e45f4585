"""Workflows: CRUD, activate, pause, duplicate, analytics, executions,
flow visualization and the API trigger (seed + CONTRACT.md)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.access import get_or_404
from app.api.core import endpoint
from app.api.errors import ApiError
from app.api.pagination import PageQuery, page_of, paginate
from app.api.schemas.automation import (
    WorkflowCreate,
    WorkflowDetail,
    WorkflowOut,
    WorkflowUpdate,
)
from app.extensions import db
from app.models import Workflow
from app.models.audit import record

TAG = "Workflows"
DETAIL = "/automation/workflows/<int:workflow_id>/"


class WorkflowQuery(PageQuery):
    status: str | None = None


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
    from flask import g

    workflow = Workflow(**body.model_dump(), created_by_id=g.user.id)
    db.session.add(workflow)
    db.session.flush()
    record("workflow.created", workflow, data={"name": workflow.name})
    db.session.commit()
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
    """Status may only move between draft and archived here; an active
    workflow must be paused before it is archived."""
    workflow = load_workflow(workflow_id)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("status") and workflow.status == "active":
        raise ApiError(
            409,
            "conflict",
            "pause the workflow before changing its status",
            fields={"status": ["workflow is active"]},
        )
    for name, value in changes.items():
        if value is None:
            continue
        setattr(workflow, name, value)
    record("workflow.updated", workflow, data={"fields": sorted(changes)})
    db.session.commit()
    return load_workflow(workflow_id)


@endpoint(DETAIL, "DELETE", tag=TAG, summary="Delete a workflow", status=204, errors=(409,))
def delete_workflow(workflow_id: int):
    """An active workflow is refused (409): contacts are inside it and its
    triggers would stop silently; pausing first makes that deliberate."""
    workflow = get_or_404(Workflow, workflow_id, what="workflow")
    if workflow.status == "active":
        raise ApiError(409, "conflict", "pause the workflow before deleting it")
    record("workflow.deleted", workflow, data={"name": workflow.name})
    db.session.delete(workflow)
    db.session.commit()
    return None
