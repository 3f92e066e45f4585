"""The periodic sweep: nothing is lost, only late (DESIGN.md rule 1).

A frequent, cheap job (:func:`wake_due`, every ``WAKE_INTERVAL_SECONDS``)
ends waits on time; the full sweep (every ``SWEEP_INTERVAL_SECONDS``) is
the safety net. Each full pass
- makes due waits ready (``waiting`` with ``wake_at <= now`` -> ``running``),
  in batches claimed with ``SKIP LOCKED`` so several sweepers never fight;
  wait-for-condition nodes set ``wake_at`` to the next pass, so their rules
  are re-checked at every sweep;
- kicks the engine when ready executions are waiting for a worker: ones
  whose lease expired (a killed worker) and ones whose job was lost (a Redis
  flush) are claimable again, they only need a job;
- runs due deliveries (helper B) and due date triggers (helper C), when
  those modules exist.
"""

from __future__ import annotations

import logging

from sqlalchemy import and_, func, or_, select, update

from app.automation.engine_claim import is_postgres
from app.clock import now
from app.extensions import db
from app.models import WorkflowExecution

log = logging.getLogger(__name__)

table = WorkflowExecution.__table__
WAKE_BATCH = 5000


def make_due_waits_ready(kick: bool = True) -> int:
    """Flip due waits to ``running`` (keeping ``wait_reason``, so the walk
    knows it resumes); returns how many. Commits each batch and, with
    ``kick``, tells the engine after each one, so workers advance the first
    batch while later ones are still being flipped."""
    total = 0
    while True:
        moment = now()
        due = and_(table.c.status == "waiting", table.c.wake_at <= moment)
        # Earliest due first, in the order of ix_executions_status_wake: the
        # LIMIT stops the index scan (ordering by id sorted every due row,
        # per batch). SKIP LOCKED never waits, so lock order cannot deadlock.
        pick = select(table.c.id).where(due).order_by(table.c.wake_at).limit(WAKE_BATCH)
        if is_postgres():
            # Picked once (an InitPlan), updated by id: a join to a CTE can go
            # nested-loop on stale statistics (seconds per batch).
            # No recheck of ``due`` outside: the pick holds the rows' locks,
            # and a recheck let the planner scan every due row per batch.
            picked = func.array(pick.with_for_update(skip_locked=True).scalar_subquery())
            where = (table.c.id == func.any(picked),)
        else:
            where = (table.c.id.in_(pick.scalar_subquery()), due)
        stmt = (
            update(table).where(*where).values(status="running", lease_owner=None, lease_until=None)
        )
        try:
            count = db.session.connection().execute(stmt).rowcount
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        total += count
        if count and kick:
            from app.queue import kick_engine

            kick_engine()  # coalesced: one queued job however many batches
        if count < WAKE_BATCH:
            break
    return total


def wake_due() -> int:
    """The frequent periodic job (``WAKE_INTERVAL_SECONDS``): only due
    waits, so a wait ends within about that interval of its ``wake_at``.
    When nothing is due it costs one empty range scan of
    ``ix_executions_status_wake`` (status, wake_at), read-only (no write
    lock on SQLite, no transaction id on PostgreSQL)."""
    moment = now()
    probe = select(table.c.id).where(table.c.status == "waiting", table.c.wake_at <= moment)
    try:
        found = db.session.connection().execute(probe.limit(1)).first()
    finally:
        db.session.rollback()
    return make_due_waits_ready(kick=True) if found else 0


def wake_finished_deliveries(kick: bool = True) -> int:
    """Executions waiting on a delivery whose message is no longer pending.

    The dispatcher wakes them itself; this catches the wakes lost when a
    worker died between recording a send and waking (the safety net would
    otherwise be the delivery wait's recheck minutes later)."""
    from app.models import OutboxMessage

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
    stmt = (
        update(table)
        .where(table.c.status == "waiting", table.c.wait_reason == "delivery", ~still_pending)
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
    """Running executions no live worker holds (never picked, or a lease
    that expired with its worker)."""
    moment = now()
    stmt = select(func.count()).where(
        table.c.status == "running",
        or_(table.c.lease_until.is_(None), table.c.lease_until < moment),
    )
    return int(db.session.connection().execute(stmt).scalar() or 0)


def _optional(path: str):
    module, _, name = path.rpartition(".")
    try:
        return getattr(__import__(module, fromlist=[name]), name)
    except (ImportError, AttributeError):
        return None


def process_waiting_executions() -> dict:
    """One sweep; returns what it did (for logs and the CLI)."""
    from app.queue import kick_engine

    result = {
        "woken": make_due_waits_ready(kick=False) + wake_finished_deliveries(kick=False),
        "ready": ready_without_worker(),
    }
    db.session.commit()
    if result["woken"] or result["ready"]:
        kick_engine()
    deliver_due = _optional("app.automation.delivery.dispatcher.deliver_due")
    from app.queue import kick_delivery, redis_connection

    if deliver_due is not None and redis_connection() is not None:
        # With workers, delivery runs only as the (coalesced) delivery job:
        # a second dispatch loop in this sweep thread would put two messages
        # in flight per process, and one SIGKILL could then repeat two
        # (CONTRACT.md: one death repeats at most one message).
        kick_delivery()
    elif deliver_due is not None:
        try:
            result["delivered"] = deliver_due() or 0
        except Exception:
            log.exception("delivering due messages failed")
            db.session.rollback()
    date_triggers = _optional("app.automation.triggers.scheduler.run_due_date_triggers")
    if date_triggers is not None:
        try:
            result["date_triggers"] = date_triggers() or 0
        except Exception:
            log.exception("date triggers failed")
            db.session.rollback()
    return result
