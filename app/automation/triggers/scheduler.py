"""Scheduled triggers (date and time types), driven by the periodic sweeper.

Each active published date trigger (an edit waits for its publication:
app/automation/lifecycle/publishing.py) keeps a cursor, ``scheduled_through``: every run
looks at the moments that fell due in ``(scheduled_through, now]`` and
enrolls the contacts whose moment it is, then moves the cursor. A run that
did not happen (downtime) is simply a longer window next time; windows are
capped at :data:`MAX_CATCH_UP`, and a trigger's first window starts when
its workflow went live, so activating a workflow does not replay the past.

What is due is each type's ``runner`` (the types are in
app/automation/triggers/kinds/dates.py).

Never twice for the same contact and date: the enrollment key hashes
workflow, contact, trigger and ``event_id = date:<trigger>:<YYYY-MM-DD>``
(the occurrence's date), so an overlapping or repeated window, or two
workers running at once, start nothing new.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update

from app.automation.engine.enrollment import NotEnrollable, enroll
from app.automation.triggers.bus import audit_many
from app.automation.triggers.registry import get_trigger_type, keys_driven_by
from app.clock import ensure_utc, now
from app.extensions import db
from app.models import PublishedTrigger, Workflow, WorkflowExecution
from app.tenancy import firm_context

log = logging.getLogger(__name__)

MAX_CATCH_UP = timedelta(days=7)
# Date moments are minute-grained: a trigger's window grows at least this
# much between runs, which keeps the sweeper's frequent calls cheap.
MIN_STEP = timedelta(seconds=30)


def run_due_date_triggers() -> int:
    """Enroll every contact whose date moment has come; returns executions
    started. Safe to run often and from several workers at once."""
    stmt = (
        select(PublishedTrigger.id, PublishedTrigger.firm_id)
        .join(Workflow, Workflow.id == PublishedTrigger.workflow_id)
        .where(
            PublishedTrigger.trigger_type.in_(sorted(keys_driven_by("schedule"))),
            PublishedTrigger.is_active.is_(True),
            Workflow.status == "active",
        )
        .order_by(PublishedTrigger.id)
        .execution_options(all_firms=True)
    )
    started = 0
    for trigger_id, firm_id in db.session.execute(stmt).all():
        with firm_context(firm_id):
            try:
                started += run_trigger(trigger_id)
            except Exception:  # one broken trigger must not stop the others
                db.session.rollback()
                log.exception("date trigger %s failed", trigger_id)
    return started


def run_trigger(trigger_id: int, until: datetime | None = None) -> int:
    """Process one trigger's window (current firm); returns executions started."""
    trigger = db.session.get(PublishedTrigger, trigger_id)
    if trigger is None:
        return 0
    workflow = trigger.workflow
    until = ensure_utc(until) or now()
    since = _window_start(trigger, workflow, until)
    if until - since < MIN_STEP:
        return 0  # ran moments ago (the sweeper calls every few seconds)
    kind = get_trigger_type(trigger.trigger_type)
    if kind.done is not None and kind.done(trigger, since):
        return 0  # done for good: no need to move the cursor ever again
    runner = kind.runner
    started = 0
    for occurrence, contact_ids in runner(trigger, since, until):
        started += _enroll(workflow, trigger, occurrence, contact_ids)
    _advance(trigger.id, trigger.scheduled_through, until)
    return started


def _window_start(trigger: PublishedTrigger, workflow: Workflow, until: datetime) -> datetime:
    start = ensure_utc(trigger.scheduled_through) or ensure_utc(
        workflow.activated_at or trigger.created_at or until
    )
    return max(start, until - MAX_CATCH_UP)


def _advance(trigger_id: int, previous: datetime | None, until: datetime) -> None:
    # Only forward, and without touching updated_at (that is the user's edit).
    cursor = PublishedTrigger.scheduled_through
    db.session.execute(
        update(PublishedTrigger)
        .where(
            PublishedTrigger.id == trigger_id,
            (cursor.is_(None)) | (cursor < until),
        )
        .values(scheduled_through=until, updated_at=PublishedTrigger.updated_at)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _enroll(workflow: Workflow, trigger: PublishedTrigger, occurrence: str, ids: list[int]) -> int:
    """``occurrence`` names the moment: its local date, or "delay"."""
    if not ids:
        return 0
    event_id = f"date:{trigger.id}:{occurrence}"
    context = {
        "trigger_type": trigger.trigger_type,
        "event_id": event_id,
        "source": "scheduler",
        "date": occurrence,
    }
    try:
        started = enroll(workflow, ids, trigger=trigger, event_id=event_id, context=context)
    except NotEnrollable as exc:
        log.warning("date trigger %s cannot start workflow %s: %s", trigger.id, workflow.id, exc)
        return 0
    if started:
        contact_ids = db.session.scalars(
            select(WorkflowExecution.contact_id).where(WorkflowExecution.id.in_(started))
        )
        audit_many(workflow, trigger, list(contact_ids), event_id, "scheduler")
        db.session.commit()
    return len(started)


__all__ = ["MAX_CATCH_UP", "run_due_date_triggers", "run_trigger"]
