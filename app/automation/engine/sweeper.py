"""The periodic sweep: nothing is lost, only late (docs/ARCHITECTURE.md rule 1).

The engine claims due waits itself (``engine.claim.due_clause``: a
``waiting`` row whose ``wake_at`` has passed is ready as it is). What is
left here is telling it when, and catching what fell through:

- a frequent, cheap job (:func:`wake_due`, every ``WAKE_INTERVAL_SECONDS``)
  kicks the engine as soon as a wait is due, so a wait ends within about
  that interval of its ``wake_at`` (a wait-for-condition is made due when
  its contact changes, see ``engine.wakes``, and otherwise every
  ``CONDITION_RECHECK_SECONDS``; so is any wait of a workflow with a rule
  goal);
- the full sweep (every ``SWEEP_INTERVAL_SECONDS``) is the safety net: it
  wakes delivery waits whose message is no longer pending (a wake lost
  with a worker), and kicks the engine when ready executions have no
  worker: ones whose lease expired (a killed worker) and ones whose job
  was lost (a Redis flush) are claimable again, they only need a job; and
  it re-checks the waits of rule-goal workflows not walked for
  ``GOAL_RECHECK_SECONDS`` (``engine.wakes.recheck_goal_waits``), for a
  contact who met a goal without an event that woke it;
- it runs due deliveries (outbox messages and REST hook deliveries) and
  due date triggers.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, or_, select, update

from app.automation.delivery.dispatcher import deliver_due
from app.automation.engine.claim import due_clause, ready_clause
from app.automation.engine.wakes import recheck_goal_waits
from app.automation.hooks import sender as hook_sender
from app.automation.triggers.double_opt_in import purge_expired
from app.automation.triggers.scheduler import run_due_date_triggers
from app.clock import now
from app.extensions import db
from app.models import OutboxMessage, WorkflowExecution
from app.queue import kick_delivery, kick_engine, kick_hooks, redis_connection

log = logging.getLogger(__name__)

table = WorkflowExecution.__table__


def wake_due() -> int:
    """The frequent periodic job (``WAKE_INTERVAL_SECONDS``): kicks the
    engine when a wait is due and no worker holds it; returns 1 if it did.
    It costs one short range scan of ``ix_executions_status_wake``
    (status, wake_at), read-only (no write lock on SQLite, no transaction
    id on PostgreSQL); the engine's claim leases the due rows."""
    probe = select(table.c.id).where(due_clause(now())).limit(1)
    try:
        found = db.session.connection().execute(probe).first()
    finally:
        db.session.rollback()
    if found is None:
        return 0

    kick_engine()
    return 1


def wake_finished_deliveries(kick: bool = True) -> int:
    """Executions waiting on a delivery whose message is no longer pending.

    The dispatcher wakes them itself; this catches the wakes lost when a
    worker died between recording a send and waking (the safety net would
    otherwise be the delivery wait's recheck minutes later)."""
    outbox = OutboxMessage.__table__
    still_pending = (
        select(outbox.c.id)
        .where(
            outbox.c.execution_id == table.c.id,
            outbox.c.node_id == table.c.current_node,
            outbox.c.status == "pending",
        )
        .exists()
    )
    waiting = (table.c.status == "waiting", table.c.wait_reason == "delivery")
    # Locked in id order, skipping rows an engine batch holds, as the
    # write-back (engine/write.py) locks them: an unordered UPDATE here
    # deadlocked with it a few times in a multi-host run.
    ready = (
        select(table.c.id)
        .where(*waiting, ~still_pending)
        .order_by(table.c.id)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(table)
        .where(table.c.id.in_(ready.scalar_subquery()), *waiting)
        .values(status="running", wake_at=now(), lease_owner=None, lease_until=None)
    )
    try:
        count = db.session.connection().execute(stmt).rowcount
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if count and kick:
        from app.queue import kick_engine

        kick_engine()
    return count


def ready_without_worker() -> int:
    """Executions ready to advance that no live worker holds: running ones
    (never picked, or a lease that expired with its worker) and due waits."""
    moment = now()
    stmt = select(func.count()).where(or_(ready_clause(moment), due_clause(moment)))
    return int(db.session.connection().execute(stmt).scalar() or 0)


def _hook_deliveries() -> int:
    """REST hook deliveries that are due (a retry's time come, a job lost
    with Redis, a claim whose worker died): kicked to the workers, or sent
    here in the embedded mode, like the outbox above."""
    if not hook_sender.any_due():
        return 0
    if redis_connection() is not None:
        kick_hooks()
        return 0
    return hook_sender.deliver_due()


def process_waiting_executions() -> dict:
    """One sweep; returns what it did (for logs and the CLI)."""
    result = {
        "woken": wake_finished_deliveries(kick=False),
        "goal_rechecks": recheck_goal_waits(),
    }
    result["ready"] = ready_without_worker()
    db.session.commit()
    if result["woken"] or result["ready"]:
        kick_engine()
    if redis_connection() is not None:
        # With workers, delivery runs only as the (coalesced) delivery job:
        # a second dispatch loop in this sweep thread would put two messages
        # in flight per process, and one SIGKILL could then repeat two
        # (docs/CONTRACT.md: one death repeats at most one message).
        kick_delivery()
    else:
        try:
            result["delivered"] = deliver_due() or 0
        except Exception:
            log.exception("delivering due messages failed")
            db.session.rollback()

    try:
        result["hooks"] = _hook_deliveries()
    except Exception:
        log.exception("REST hook deliveries failed")
        db.session.rollback()
    try:
        result["signups_expired"] = purge_expired()
    except Exception:
        log.exception("expiring double opt-in sign-ups failed")
        db.session.rollback()
    try:
        result["date_triggers"] = run_due_date_triggers() or 0
    except Exception:
        log.exception("date triggers failed")
        db.session.rollback()
    return result
