"""Lifecycle endpoints for working together: comments on workflows and
steps, and the approval queue (see :mod:`app.api.lifecycle`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field
from sqlalchemy import select

from app.api.access import get_or_404
from app.api.core import Input, Output, endpoint
from app.api.errors import ApiError, not_found, validation_error
from app.api.lifecycle import (
    TAG,
    WF,
    ApprovalOut,
    PublishOut,
    acting_user,
    publish_errors,
    workflow_or_404,
)
from app.api.pagination import PageQuery, page_of, paginate
from app.automation.lifecycle import approvals, comments
from app.models import ApprovalRequest, WorkflowComment


class CommentIn(Input):
    body: str = Field(max_length=5000)
    node_id: str | None = Field(default=None, max_length=100)


class CommentOut(Output):
    id: int
    workflow: int = Field(validation_alias="workflow_id")
    node_id: str | None
    author: int | None = Field(validation_alias="author_id")
    body: str
    created_at: datetime


class CommentQuery(PageQuery):
    node: str | None = Field(default=None, description="only this step's comments")


class NodeCounts(Output):
    counts: dict[str, int]


class RejectIn(Input):
    note: str = Field(default="", max_length=2000)


# ---------------------------------------------------------------- comments


@endpoint(
    f"{WF}/comments/",
    tag=TAG,
    summary="Comments on a workflow (oldest first); ?node= for one step",
    query=CommentQuery,
    response=page_of(CommentOut),
    errors=(404,),
)
def list_comments(workflow_id: int, query: CommentQuery):
    workflow_or_404(workflow_id)
    stmt = select(WorkflowComment).where(WorkflowComment.workflow_id == workflow_id)
    if query.node:
        stmt = stmt.where(WorkflowComment.node_id == query.node)
    return paginate(stmt, WorkflowComment.id, query)


@endpoint(
    f"{WF}/comments/counts/",
    tag=TAG,
    summary="Comment counts per step (canvas badges)",
    response=NodeCounts,
    errors=(404,),
)
def comment_counts(workflow_id: int):
    return {"counts": comments.comments_by_node(workflow_or_404(workflow_id))}


@endpoint(
    f"{WF}/comments/",
    "POST",
    tag=TAG,
    summary="Comment on a workflow, or on one of its steps (node_id)",
    body=CommentIn,
    response=CommentOut,
    status=201,
    errors=(404,),
)
def add_comment(workflow_id: int, body: CommentIn):
    try:
        return comments.add_comment(
            workflow_or_404(workflow_id), acting_user(), body.body, body.node_id
        )
    except comments.CommentError as exc:
        raise validation_error({exc.field: [str(exc)]}) from None


@endpoint(
    f"{WF}/comments/<int:comment_id>/",
    "DELETE",
    tag=TAG,
    summary="Delete a comment (its author or an admin)",
    errors=(404,),
)
def delete_comment(workflow_id: int, comment_id: int):
    comment = comments.get_comment(workflow_or_404(workflow_id), comment_id)
    if comment is None:
        raise not_found("comment")
    try:
        comments.delete_comment(comment, acting_user())
    except comments.CommentError as exc:
        raise ApiError(exc.status, "forbidden", str(exc)) from None
    return None


# --------------------------------------------------------------- approvals


def _approval(approval_id: int) -> ApprovalRequest:
    return get_or_404(ApprovalRequest, approval_id, what="approval request")


@endpoint(
    "/automation/approvals/",
    tag=TAG,
    summary="Approval requests waiting for an admin",
    query=PageQuery,
    response=page_of(ApprovalOut),
)
def list_approvals(query: PageQuery):
    stmt = select(ApprovalRequest).where(ApprovalRequest.status == "pending")
    return paginate(stmt, ApprovalRequest.id, query)


def _decide(call):
    try:
        return call()
    except approvals.ApprovalError as exc:
        code = "forbidden" if exc.status == 403 else "conflict"
        raise ApiError(exc.status, code, str(exc)) from None


@endpoint(
    "/automation/approvals/<int:approval_id>/approve/",
    "POST",
    tag=TAG,
    summary="Approve a request: publishes the requested graph (admins only)",
    response=PublishOut,
    errors=(403, 404, 409, 422),
)
def approve(approval_id: int):
    approval = _approval(approval_id)
    version, moved = publish_errors(
        lambda: _decide(lambda: approvals.approve(approval, acting_user()))
    )
    return {"version": version, "moved": moved, "approval": approval}


@endpoint(
    "/automation/approvals/<int:approval_id>/reject/",
    "POST",
    tag=TAG,
    summary="Reject a request, with a note (admins only)",
    body=RejectIn,
    response=ApprovalOut,
    errors=(403, 404, 409),
)
def reject(approval_id: int, body: RejectIn):
    approval = _approval(approval_id)
    return _decide(lambda: approvals.reject(approval, acting_user(), body.note))
