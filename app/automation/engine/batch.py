"""One batch: walk every claimed execution, write them back together.

If the set-based write-back fails (a constraint, a deadlock victim), the
batch is rolled back and each execution is walked and written alone, so
one bad execution cannot hold the others back; one that fails alone too
is put on its retry schedule (or failed) with the error.
"""

from __future__ import annotations

import gc
import logging
import uuid
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import String, literal, select, union, update

from app.automation.engine.state import BatchState
from app.automation.engine.wakes import wake_contact_waits
from app.automation.engine.walk import walk
from app.automation.engine.write import executions, write_back
from app.automation.nodes.step import Effects
from app.automation.operations import metrics
from app.automation.triggers.bus import emit_many
from app.clock import now
from app.extensions import db
from app.models import Audience, DeadLetter, PublishedTrigger, Workflow
from app.queue import kick_hooks

log = logging.getLogger(__name__)

CRASH_BACKOFF_SECONDS = 30
CRASH_MAX_ATTEMPTS = 5


@contextmanager
def quiet_gc():
    """No cyclic garbage collection inside a batch.

    A batch allocates a few hundred thousand short-lived dicts and tuples;
    each allocation burst makes the collector traverse the whole app heap
    (Flask, SQLAlchemy, pydantic), about a fifth of a worker's CPU time.
    Reference counting frees the batch's objects anyway; the collector
    resumes after it. The objects alive at the first batch (the loaded app)
    are frozen out of later collections for the same reason."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_frozen = False


def run_batch(rows: list[dict], owner: str) -> dict:
    """Advance claimed ``rows`` (leased to ``owner``); returns counts."""
    with quiet_gc():
        return _run_batch(rows, owner)


def _run_batch(rows: list[dict], owner: str) -> dict:
    claimed_at = now()
    try:
        written = _walk_and_write(rows, owner)
    except Exception:
        log.exception("batch of %d executions failed; retrying one by one", len(rows))
        written = []
        for row in rows:
            try:
                written.extend(_walk_and_write([row], owner))
            except Exception as exc:
                log.exception("execution %s failed to advance", row["id"])
                _record_crash(row, owner, exc)
    metrics.record_batch(rows, written, claimed_at)
    _after_commit(written)
    return {"executions": len(rows), "steps": sum(e.steps for e in written)}


def _walk_and_write(rows: list[dict], owner: str) -> list[Effects]:
    moment = now()
    state = BatchState(rows, moment)
    effects = [walk(row, state, moment) for row in rows]
    written = write_back(owner, effects, state)
    if state.hook_deliveries:
        kick_hooks()
    return written


def _after_commit(written: list[Effects]) -> None:
    """Tell the trigger bus about CRM changes (the acting workflow
    excluded) and the delivery workers about pending messages."""
    candidates = [(e, event) for e in written if not e.test_mode for event in e.events]
    if candidates:
        _wake_condition_waits(candidates, written)
    events = []
    if candidates:
        listening = _listening(candidates)
        events = [
            {
                "firm_id": e.firm_id,
                "event_id": f"wf_{uuid.uuid4().hex}",
                "source": "workflow",
                "exclude_workflow_id": e.workflow_id,
                **event,
            }
            for e, event in candidates
            if (e.firm_id, ANY_CHANGE) in listening
            or any((e.firm_id, kind) in listening for kind in _types_of(event))
        ]
    if events:
        try:
            emit_many(events)
        except Exception:
            log.exception("emitting %d workflow events failed", len(events))
            db.session.rollback()
    if any(e.delivery_pending for e in written):
        from app.queue import kick_delivery

        kick_delivery()


def _wake_condition_waits(candidates: list[tuple[Effects, dict]], written: list[Effects]) -> None:
    """Other executions waiting on a contact this batch changed (for a
    condition, or in a rule-goal workflow) re-check it now (this batch's
    own walked on the new facts)."""
    try:
        woken = wake_contact_waits(
            {event["contact_id"] for _, event in candidates},
            skip_executions=[e.execution_id for e in written],
        )
        db.session.commit()
    except Exception:
        log.exception("waking waits on changed contacts failed (the periodic recheck will)")
        db.session.rollback()
        return
    if woken:
        from app.queue import kick_engine

        kick_engine()


SCORE_TYPES = ("score_threshold_reached", "score_threshold_dropped")


def _types_of(event: dict) -> tuple[str, ...]:
    """The trigger types an event can fire (a score change also yields the
    bus's derived threshold events)."""
    if event["event_type"] == "contact_updated" and "score" in (
        (event.get("data") or {}).get("changed") or {}
    ):
        return (event["event_type"], *SCORE_TYPES)
    return (event["event_type"],)


# A firm with audiences hears every change of its contacts: membership is
# re-checked by the bus (app/automation/audiences/membership.py), whether
# or not a trigger listens to the change itself.
ANY_CHANGE = "*"


def _listening(candidates: list[tuple[Effects, dict]]) -> set[tuple[int, str]]:
    """(firm, trigger type) pairs some active trigger listens to, and
    (firm, ANY_CHANGE) for a firm with audiences: a batch of 500 executions
    makes ~1,000 CRM events, and when nothing waits for them, one indexed
    query here saves building and recording them."""
    wanted: set[str] = set()
    for _, event in candidates:
        wanted.update(_types_of(event))
    firms = {e.firm_id for e, _ in candidates}
    triggers, workflows, audiences = (
        PublishedTrigger.__table__,
        Workflow.__table__,
        Audience.__table__,
    )
    listeners = (
        select(triggers.c.firm_id, triggers.c.trigger_type)
        .join(workflows, workflows.c.id == triggers.c.workflow_id)
        .where(
            triggers.c.firm_id.in_(firms),
            triggers.c.trigger_type.in_(wanted),
            triggers.c.is_active.is_(True),
            workflows.c.status == "active",
        )
    )
    # The same statement (no second round trip): the firms' audiences.
    segmented = select(audiences.c.firm_id, literal(ANY_CHANGE, String)).where(
        audiences.c.firm_id.in_(firms)
    )
    stmt = union(listeners, segmented)
    listening = set(db.session.connection().execute(stmt).all())
    db.session.commit()
    return listening


def _record_crash(row: dict, owner: str, exc: Exception) -> None:
    """An execution that cannot even be written: retry later, then fail."""
    db.session.rollback()
    attempts = int(row["attempts"] or 0) + 1
    error = f"{type(exc).__name__}: {exc}"[:2000]
    moment = now()
    mine = (executions.c.id == row["id"], executions.c.lease_owner == owner)
    if attempts < CRASH_MAX_ATTEMPTS:
        values = {
            "status": "waiting",
            "wait_reason": "retry",
            "wake_at": moment + timedelta(seconds=CRASH_BACKOFF_SECONDS * 2 ** (attempts - 1)),
        }
    else:
        values = {"status": "failed", "completed_at": moment, "wake_at": None}
    values.update(attempts=attempts, last_error=error, lease_owner=None, lease_until=None)
    try:
        changed = (
            db.session.connection()
            .execute(update(executions).where(*mine).values(**values))
            .rowcount
        )
        if changed and values["status"] == "failed":
            db.session.execute(
                DeadLetter.__table__.insert().values(
                    firm_id=row["firm_id"],
                    execution_id=row["id"],
                    workflow_id=row["workflow_id"],
                    node_id=row["current_node"],
                    error=error,
                    attempts=attempts,
                    created_at=moment,
                )
            )
        db.session.commit()
    except Exception:
        log.exception("could not record the failure of execution %s", row["id"])
        db.session.rollback()
