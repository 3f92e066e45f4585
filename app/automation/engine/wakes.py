"""Waking waiting executions: :func:`wake` (a delivery finished) and the
waits of a contact that changed.

Two kinds of wait depend on facts about the contact: a ``wait_condition``
step (its own rules) and any wait of a workflow with a rule goal (contacts
anywhere in the workflow who meet the goal's rules jump to it, the walk
checks before each step). Both re-check when anything about the contact
changes: an event through the trigger bus (tags, lists, fields, deals,
e-mail opens and clicks, form posts, page visits) or a CRM step of any
workflow. Such a change makes those waits due now; the engine claims them
like any due wait, and an early wake never cuts a wait short (the wait's
executor decides again from the clock). The periodic rechecks remain as a
safety net for facts that change without an event:
``CONDITION_RECHECK_SECONDS`` for condition waits, ``GOAL_RECHECK_SECONDS``
for the waits of rule-goal workflows (:func:`recheck_goal_waits`, run by
the sweeper).

The wake also clears the lease: a worker walking one of these executions
right now evaluated the rules on facts from before the change, and its
write-back is fenced out (``engine.write.owned_ids``), so the execution is
walked again on the new facts instead of sleeping until the next recheck.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, text, update

from app.automation.engine.claim import id_in, lease_free
from app.automation.engine.state import rule_goal_versions
from app.clock import now
from app.extensions import db
from app.models import Workflow, WorkflowExecution, WorkflowVersion
from app.models.execution import CONDITION_WAIT_WHERE
from app.queue import kick_engine

table = WorkflowExecution.__table__

# The waits a rule goal can cut short. Not "retry" (an early run would cut
# the backoff short) nor "delivery" (its message is with the dispatcher,
# which wakes it); "condition" waits are woken by wake_condition_waits.
GOAL_WAIT_REASONS = ("time", "until", "held")


def wake_contact_waits(contact_ids: Iterable[int], skip_executions: Iterable[int] = ()) -> int:
    """After a change to ``contact_ids``: make their condition waits and
    their waits in rule-goal workflows due now (in the caller's
    transaction; it commits and kicks the engine); returns how many."""
    contacts = sorted({int(cid) for cid in contact_ids if cid is not None})
    skip = sorted({int(eid) for eid in skip_executions})
    return wake_condition_waits(contacts, skip) + wake_goal_waits(contacts, skip)


def wake_condition_waits(contact_ids: Iterable[int], skip_executions: Iterable[int] = ()) -> int:
    """Make the condition waits of ``contact_ids`` due now (in the caller's
    transaction; it commits and kicks the engine); returns how many.
    ``skip_executions``: ones that evaluated their rules on the changed
    facts already (the batch that made the change)."""
    contacts = sorted({int(cid) for cid in contact_ids if cid is not None})
    if not contacts:
        return 0
    stmt = update(table).where(
        id_in(table.c.contact_id, contacts),
        # The predicate of ix_executions_condition_waits, word for word and
        # without parameters, so the planner can always use that index.
        text(CONDITION_WAIT_WHERE),
    )
    skip = sorted({int(eid) for eid in skip_executions})
    if skip:
        stmt = stmt.where(~id_in(table.c.id, skip))
    stmt = stmt.values(wake_at=now(), lease_owner=None, lease_until=None)
    return db.session.connection().execute(stmt).rowcount


def _wake(ids, *where) -> int:
    """Due now, and the lease cleared: a walk in flight on facts from
    before the change is fenced out of its write-back and walked again."""
    if not ids:
        return 0
    stmt = (
        update(table)
        .where(id_in(table.c.id, sorted(ids)), table.c.status == "waiting", *where)
        .values(wake_at=now(), lease_owner=None, lease_until=None)
    )
    return db.session.connection().execute(stmt).rowcount


def wake_goal_waits(contact_ids: Iterable[int], skip_executions: Iterable[int] = ()) -> int:
    """Make the waits of ``contact_ids`` in workflows with a rule goal due
    now, so a contact who meets the goal jumps to it at once; returns how
    many. ``skip_executions`` as for :func:`wake_condition_waits`."""
    contacts = sorted({int(cid) for cid in contact_ids if cid is not None})
    if not contacts:
        return 0
    conn = db.session.connection()
    stmt = select(table.c.id, table.c.workflow_id, table.c.version).where(
        id_in(table.c.contact_id, contacts),
        table.c.status == "waiting",
        table.c.wait_reason.in_(GOAL_WAIT_REASONS),
        table.c.test_mode.is_(False),
    )
    rows = conn.execute(stmt).all()
    if not rows:
        return 0
    goals = rule_goal_versions({(w, v) for _, w, v in rows})
    skip = {int(eid) for eid in skip_executions}
    ids = [i for i, w, v in rows if (w, v) in goals and i not in skip]
    return _wake(ids, table.c.wait_reason.in_(GOAL_WAIT_REASONS))


def recheck_goal_waits(limit: int = 1000) -> int:
    """The safety net of :func:`wake_goal_waits`, for facts that change
    without an event (an event's date passing, a wake lost with a worker):
    waits of rule-goal workflows not walked for ``GOAL_RECHECK_SECONDS``
    are made due now, up to ``limit`` per call, oldest first; returns how
    many (in the caller's transaction). A wait held by a live worker is
    left alone: nothing changed under it."""
    seconds = float(current_app.config.get("GOAL_RECHECK_SECONDS") or 300)
    moment = now()
    workflows, versions = Workflow.__table__, WorkflowVersion.__table__
    conn = db.session.connection()
    stmt = (
        select(versions.c.workflow_id, versions.c.number)
        .join(workflows, workflows.c.id == versions.c.workflow_id)
        .where(workflows.c.status == "active")
    )
    goals = rule_goal_versions({(w, n) for w, n in conn.execute(stmt)})
    if not goals:
        return 0
    by_workflow: dict[int, list[int]] = {}
    for workflow_id, number in sorted(goals):
        by_workflow.setdefault(workflow_id, []).append(number)
    woken = 0
    for workflow_id, numbers in by_workflow.items():
        if woken >= limit:
            break
        pick = (
            select(table.c.id)
            .where(
                table.c.workflow_id == workflow_id,
                table.c.version.in_(numbers),
                table.c.status == "waiting",
                table.c.wait_reason.in_(GOAL_WAIT_REASONS),
                table.c.updated_at < moment - timedelta(seconds=seconds),
                table.c.test_mode.is_(False),
                lease_free(moment),
            )
            .order_by(table.c.updated_at)
            .limit(limit - woken)
        )
        ids = list(conn.execute(pick).scalars())
        woken += _wake(ids, table.c.wait_reason.in_(GOAL_WAIT_REASONS), lease_free(moment))
    return woken


def wake(execution_ids) -> int:
    """Make waiting executions ready now (a delivery finished, a fact a
    wait-for-condition watches changed). Commits and kicks the engine."""
    ids = sorted({int(i) for i in execution_ids})
    if not ids:
        return 0
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
