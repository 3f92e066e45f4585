"""Resuming a failed execution at its failed node (``retry_execution``)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.automation.delivery.outbox import requeue
from app.automation.engine.enrollment import workflow_definition
from app.automation.nodes.registry import keys_where
from app.clock import now
from app.extensions import db
from app.models import DeadLetter, WorkflowExecution
from app.models.execution import ACTIVE_STATUSES


def _node_type(execution: WorkflowExecution) -> str | None:
    definition = workflow_definition(execution.workflow, execution.version or None)
    for node in definition.get("nodes", []):
        if node["node_id"] == execution.current_node:
            return node["node_type"]
    return None


def active_elsewhere(execution: WorkflowExecution) -> int | None:
    """The id of another execution the contact is inside this workflow
    with now (it re-entered after this one failed), if any: a contact is
    in a workflow at most once at a time, so this one cannot resume."""
    if execution.test_mode:
        return None
    table = WorkflowExecution.__table__
    stmt = select(table.c.id).where(
        table.c.workflow_id == execution.workflow_id,
        table.c.contact_id == execution.contact_id,
        table.c.id != execution.id,
        table.c.status.in_(ACTIVE_STATUSES),
        table.c.test_mode.is_(False),
    )
    return db.session.connection().execute(stmt.limit(1)).scalar()


def why_not_resumable(execution: WorkflowExecution) -> str:
    """Why a retry of ``execution`` changed nothing, for the API and pages."""
    other = active_elsewhere(execution) if execution.status == "failed" else None
    if other is not None:
        return (
            f"the contact is in this workflow again (execution {other}), so this one cannot resume"
        )
    return f"the execution is {execution.status}, not failed"


def resume_failed(execution: WorkflowExecution) -> bool:
    """Make a failed execution continue at its failed node, in place: the
    node runs again at the same visit, steps before it are not repeated.
    A message step has its outbox row requeued and waits for
    the delivery. Not when the contact is in the workflow again
    (:func:`active_elsewhere`). Does not commit."""
    if execution.status != "failed" or active_elsewhere(execution) is not None:
        return False
    moment = now()
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
    try:
        # One savepoint: a requeued message stays only with its execution
        # resumed (not when a concurrent retry won, or the contact re-entered
        # a moment ago and holds the one-active-execution index entry).
        with db.session.begin_nested():
            _requeue_and_resume(execution, values)
    except (IntegrityError, _NotFailed):
        return False
    dead = DeadLetter.__table__
    db.session.connection().execute(
        update(dead)
        .where(dead.c.execution_id == execution.id, dead.c.resolved_at.is_(None))
        .values(resolved_at=moment)
    )
    return True


class _NotFailed(Exception):
    """Another retry resumed the execution first."""


def _requeue_and_resume(execution: WorkflowExecution, values: dict) -> None:
    if _node_type(execution) in keys_where("sends_message") and execution.current_node:
        visit = (execution.execution_path or []).count(execution.current_node) or 1
        if requeue(execution.id, execution.current_node, visit):
            values.update(status="waiting", wait_reason="delivery")
    table = WorkflowExecution.__table__
    stmt = update(table).where(table.c.id == execution.id, table.c.status == "failed")
    if db.session.connection().execute(stmt.values(**values)).rowcount != 1:
        raise _NotFailed
