"""Comments on a workflow and on its steps.

A comment on a step names it by ``node_id`` so it follows the step across
versions; a step deleted later keeps its comments in the workflow's list
(marked as about a step that no longer exists) rather than losing them.
"""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import Workflow, WorkflowComment
from app.models.audit import record

MAX_BODY = 5000


class CommentError(ValueError):
    """Bad comment input; ``field`` names the offending field."""

    def __init__(self, field: str, message: str, *, status: int = 400):
        super().__init__(message)
        self.field = field
        self.status = status


def add_comment(workflow: Workflow, user, body: str, node_id: str | None = None) -> WorkflowComment:
    """Add a comment (on a step when ``node_id`` is given); commits."""
    # PostgreSQL cannot store NUL; nobody types one on purpose.
    body = (body or "").replace("\x00", "").strip()
    if not body:
        raise CommentError("body", "write something")
    if len(body) > MAX_BODY:
        raise CommentError("body", f"at most {MAX_BODY} characters")
    node_id = (node_id or "").strip() or None
    if node_id is not None and workflow.node_by_key(node_id) is None:
        raise CommentError("node_id", f"{node_id!r} is not a step of this workflow")
    comment = WorkflowComment(
        workflow_id=workflow.id,
        firm_id=workflow.firm_id,
        node_id=node_id,
        author_id=getattr(user, "id", None),
        body=body,
    )
    db.session.add(comment)
    db.session.flush()
    record("workflow.commented", workflow, data={"comment": comment.id, "node": node_id})
    db.session.commit()
    return comment


def list_comments(workflow: Workflow, node_id: str | None = None) -> list[WorkflowComment]:
    """Oldest first; all of the workflow's, or one step's when ``node_id``."""
    stmt = select(WorkflowComment).where(WorkflowComment.workflow_id == workflow.id)
    if node_id:
        stmt = stmt.where(WorkflowComment.node_id == node_id)
    return list(db.session.scalars(stmt.order_by(WorkflowComment.id)))


def comments_by_node(workflow: Workflow) -> dict[str, int]:
    """How many comments each step has (for the builder's canvas badges)."""
    stmt = (
        select(WorkflowComment.node_id, func.count())
        .where(WorkflowComment.workflow_id == workflow.id, WorkflowComment.node_id.is_not(None))
        .group_by(WorkflowComment.node_id)
    )
    return {node_id: count for node_id, count in db.session.execute(stmt)}


def get_comment(workflow: Workflow, comment_id: int) -> WorkflowComment | None:
    stmt = select(WorkflowComment).where(
        WorkflowComment.id == comment_id, WorkflowComment.workflow_id == workflow.id
    )
    return db.session.scalars(stmt).first()


def can_delete(comment: WorkflowComment, user) -> bool:
    return user is not None and (user.is_admin or comment.author_id == user.id)


def delete_comment(comment: WorkflowComment, user) -> None:
    """Authors delete their own comments, admins any; commits."""
    if not can_delete(comment, user):
        raise CommentError(
            "comment", "only its author or an admin can delete a comment", status=403
        )
    record("workflow.comment_deleted", comment, data={"workflow": comment.workflow_id})
    db.session.delete(comment)
    db.session.commit()
