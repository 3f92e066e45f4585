"""What an operator does to one execution: cancel it, retry it."""

from __future__ import annotations

from sqlalchemy import update

from app.automation.engine.retry import resume_failed
from app.clock import now
from app.extensions import db
from app.models import WorkflowExecution
from app.models.audit import record
from app.models.execution import ACTIVE_STATUSES


def cancel_execution(execution: WorkflowExecution, user=None) -> bool:
    """Stop an execution for good. A job that already claimed it finds the
    status changed at write-back and writes nothing (engine.write)."""
    table = WorkflowExecution.__table__
    moment = now()
    stmt = (
        update(table)
        .where(table.c.id == execution.id, table.c.status.in_(ACTIVE_STATUSES))
        .values(
            status="canceled",
            completed_at=moment,
            updated_at=moment,
            wake_at=None,
            lease_owner=None,
            lease_until=None,
        )
    )
    changed = db.session.connection().execute(stmt).rowcount == 1
    if changed:
        record("execution.canceled", execution, data={"node": execution.current_node})
    db.session.commit()
    db.session.refresh(execution)
    return changed


def retry_execution(execution: WorkflowExecution, user=None) -> bool:
    """Resume a failed execution at its failed node, in the same execution;
    steps already done are not repeated. A failed message step gets its
    outbox row requeued and waits for the delivery."""
    changed = resume_failed(execution)
    if changed:
        from app.models.audit import record

        record("execution.retried", execution, data={"node": execution.current_node})
    db.session.commit()
    db.session.refresh(execution)
    if changed:
        from app.queue import kick_delivery, kick_engine

        kick_engine() if execution.status == "running" else kick_delivery()
    return changed
