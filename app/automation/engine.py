"""The execution engine's public face.

Executions advance in batches (DESIGN.md rule 4): a job claims ready rows
(:mod:`engine_claim`), walks each in memory until a wait, the end or a
failure (:mod:`engine_walk`), and writes everything back in one
transaction (:mod:`engine_write`). This module holds the entry points that
jobs, the API, the UI and tests call.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select, update

from app.clock import now
from app.extensions import db
from app.models import WorkflowExecution
from app.models.execution import ACTIVE_STATUSES

log = logging.getLogger(__name__)

# A kick job keeps claiming batches for at most this long, then hands over
# to a fresh job so other queues and workers get their turn.
JOB_BUDGET_SECONDS = 20.0


def advance_ready_batch(limit: int | None = None, owner: str | None = None) -> dict:
    """Claim up to ``limit`` ready executions, advance them, write back.

    Returns ``{"executions": n, "steps": n}``; ``executions`` is how many
    were claimed (``limit`` claimed means there may be more)."""
    from flask import current_app

    from app.automation.engine_batch import quiet_gc, run_batch
    from app.automation.engine_claim import claim_ready, new_owner

    limit = limit or int(current_app.config.get("ENGINE_BATCH_SIZE") or 500)
    owner = owner or new_owner()
    with quiet_gc():
        rows = claim_ready(limit, owner)
        if not rows:
            return {"executions": 0, "steps": 0}
        return run_batch(rows, owner)


def run_engine_job() -> dict:
    """The ``engine`` queue's job: advance batches while there are any.

    When a batch comes back full it kicks another job first, so an idle
    worker joins in (2 workers, 2 jobs, no coordination needed)."""
    from flask import current_app

    from app.queue import clear_kick, kick_engine

    clear_kick("engine")
    limit = int(current_app.config.get("ENGINE_BATCH_SIZE") or 500)
    largest = max(limit, int(current_app.config.get("ENGINE_MAX_BATCH_SIZE") or 2000))
    totals = {"executions": 0, "steps": 0}
    started = time.monotonic()
    handed_over = False
    while True:
        result = advance_ready_batch(limit)
        totals["executions"] += result["executions"]
        totals["steps"] += result["steps"]
        if result["executions"] < limit:
            break
        # A full batch means a long queue: larger batches spread each
        # batch's fixed cost (claim, loads, one commit) over more executions,
        # while a short queue keeps small batches and low latency.
        limit = min(limit * 2, largest)
        if not handed_over:
            kick_engine()
            handed_over = True
        if time.monotonic() - started > JOB_BUDGET_SECONDS:
            kick_engine()
            break
    return totals


def _deliver_due():
    try:
        from app.automation.delivery.dispatcher import deliver_due
    except ImportError:
        return None
    return deliver_due


def run_delivery_job() -> int:
    """The ``delivery`` queue's job: send due outbox rows (helper B's code)."""
    from app.queue import clear_kick

    clear_kick("delivery")
    deliver_due = _deliver_due()
    if deliver_due is None:
        return 0
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < JOB_BUDGET_SECONDS:
        count = deliver_due()
        sent += count or 0
        if not count:
            break
    return sent


def drain(max_rounds: int = 200) -> dict:
    """Synchronously run engine batches (due waits included), due
    deliveries and delivery wakes until nothing is ready (tests and the CLI
    use this instead of workers)."""
    from app.automation.sweeper import wake_finished_deliveries

    totals = {"rounds": 0, "executions": 0, "steps": 0, "delivered": 0, "woken": 0}
    deliver_due = _deliver_due()
    for _ in range(max_rounds):
        totals["rounds"] += 1
        batch = advance_ready_batch()
        delivered = (deliver_due() or 0) if deliver_due is not None else 0
        woken = wake_finished_deliveries(kick=False)
        totals["executions"] += batch["executions"]
        totals["steps"] += batch["steps"]
        totals["delivered"] += delivered
        totals["woken"] += woken
        if not batch["executions"] and not delivered and not woken:
            break
    return totals


def process_waiting_executions() -> dict:
    """One sweep (see :mod:`app.automation.sweeper`)."""
    from app.automation.sweeper import process_waiting_executions as sweep

    return sweep()


def wake(execution_ids) -> int:
    """Make waiting executions ready now (a delivery finished, a fact a
    wait-for-condition watches changed). Commits and kicks the engine."""
    from app.queue import kick_engine

    ids = sorted({int(i) for i in execution_ids})
    if not ids:
        return 0
    table = WorkflowExecution.__table__
    stmt = (
        update(table)
        .where(table.c.id.in_(ids), table.c.status == "waiting")
        .values(status="running", wake_at=now(), lease_owner=None, lease_until=None)
    )
    count = db.session.connection().execute(stmt).rowcount
    db.session.commit()
    if count:
        kick_engine()
    return count


def cancel_execution(execution: WorkflowExecution, user=None) -> bool:
    """Stop an execution for good. A job that already claimed it finds the
    status changed at write-back and writes nothing (engine_write)."""
    from app.models.audit import record

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
    outbox row requeued (helper B) and waits for the delivery."""
    from app.automation.engine_retry import resume_failed

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


class WorkflowExecutor:
    """Advance one execution as far as it can go (the seed's interface);
    the same walk and write-back the batch jobs use."""

    def __init__(self, execution: WorkflowExecution):
        self.execution = execution

    def execute(self) -> WorkflowExecution:
        from app.automation.engine_batch import run_batch
        from app.automation.engine_claim import claim_ready, new_owner

        owner = new_owner()
        rows = claim_ready(1, owner, ids=[self.execution.id])
        if rows:
            run_batch(rows, owner)
        db.session.expire_all()
        refreshed = db.session.get(WorkflowExecution, self.execution.id)
        return refreshed or self.execution


def test_run(workflow, contact, user=None) -> WorkflowExecution:
    """Run ``contact`` through ``workflow`` in test mode: nothing leaves
    (messages become "test" outbox rows, CRM records are not changed,
    waits pass at once) and each step records what it would have done."""
    from app.automation.enrollment import enroll

    ids = enroll(
        workflow,
        [contact.id],
        trigger_type="manual",
        test_mode=True,
        require_active=False,
        context={"test_run_by": getattr(user, "email", None)},
    )
    if not ids:
        raise ValueError("the contact cannot be test-run through this workflow")
    execution = db.session.get(WorkflowExecution, ids[0])
    for _ in range(50):
        execution = WorkflowExecutor(execution).execute()
        if execution.status != "running":
            break
    return execution


def executions_by_id(ids) -> list[WorkflowExecution]:
    stmt = select(WorkflowExecution).where(WorkflowExecution.id.in_(list(ids)))
    return list(db.session.scalars(stmt))
