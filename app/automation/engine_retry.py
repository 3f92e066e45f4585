"""Resuming a failed execution at its failed node (``retry_execution``)."""

from __future__ import annotations

from sqlalchemy import update

from app.clock import now
from app.extensions import db
from app.models import DeadLetter, WorkflowExecution

MESSAGE_NODES = ("send_email", "send_sms", "webhook")


def _node_type(execution: WorkflowExecution) -> str | None:
    from app.automation.enrollment import workflow_definition

    definition = workflow_definition(execution.workflow, execution.version or None)
    for node in definition.get("nodes", []):
        if node["node_id"] == execution.current_node:
            return node["node_type"]
    return None


def resume_failed(execution: WorkflowExecution) -> bool:
    """Make a failed execution continue at its failed node, in place: the
    node runs again at the same visit, steps before it are not repeated.
    A message step has its outbox row requeued (helper B) and waits for
    the delivery. Does not commit."""
    if execution.status != "failed":
        return False
    moment = now()
    table = WorkflowExecution.__table__
    values = {
        "status": "running",
        "wait_reason": "retry",
        "wake_at": moment,
        "attempts": 0,
        "last_error": None,
        "completed_at": None,
        "lease_owner": None,
        "lease_until": None,
        "updated_at": moment,
    }
    if _node_type(execution) in MESSAGE_NODES and execution.current_node:
        visit = (execution.execution_path or []).count(execution.current_node) or 1
        try:
            from app.automation.delivery.outbox import requeue
        except ImportError:
            requeue = None
        if requeue is not None and requeue(execution.id, execution.current_node, visit):
            values.update(status="waiting", wait_reason="delivery")
    stmt = update(table).where(table.c.id == execution.id, table.c.status == "failed")
    if db.session.connection().execute(stmt.values(**values)).rowcount != 1:
        return False
    dead = DeadLetter.__table__
    db.session.connection().execute(
        update(dead)
        .where(dead.c.execution_id == execution.id, dead.c.resolved_at.is_(None))
        .values(resolved_at=moment)
    )
    return True
