""" "Enroll this audience now": every contact matching an audience started
in a workflow, in batches, by a queue job whose progress is a row any
process can read (``GET /api/v1/audiences/{id}/enroll/{job}/``, the page's
progress bar).

Each batch is one ``enroll`` call keyed by the job (``audience:<job id>``),
so a batch run twice starts nobody twice (docs/CONTRACT.md "Promises");
the row's ``last_contact_id`` says where the next batch begins.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from app.automation.audiences.counting import count, page_ids
from app.automation.crm.errors import CrmError
from app.automation.engine.enrollment import NotEnrollable, enroll, entry_of
from app.automation.operations.job_rows import claim_queued
from app.clock import now
from app.extensions import db
from app.models import Audience, AudienceEnrollment, Workflow
from app.queue import enqueue
from app.tenancy import firm_context, scoped_get

log = logging.getLogger(__name__)

BATCH = 500
# No batch for this long: the worker is gone (a batch takes seconds).
STALL_SECONDS = 300
# Stalls in a row, no batch done in between: the job itself kills its
# worker (a batch that runs out of memory, say) and is failed, not retried.
STALL_LIMIT = 3


class EnrollRefused(CrmError):
    """The workflow cannot take the audience (422 naming ``workflow``)."""


def start_enrollment(audience: Audience, workflow_id, user=None) -> AudienceEnrollment:
    """Queue the job; commits and returns its row (status "queued")."""
    if isinstance(workflow_id, bool) or not isinstance(workflow_id, int):
        raise EnrollRefused("Choose a workflow.", field="workflow")
    workflow = scoped_get(Workflow, workflow_id)
    if workflow is None:
        raise EnrollRefused("No such workflow.", field="workflow")
    if workflow.status != "active":
        raise EnrollRefused("Only an active workflow can take contacts.", field="workflow")
    try:
        entry_of(workflow)
    except NotEnrollable:
        raise EnrollRefused("The workflow has no single entry step.", field="workflow") from None
    job = AudienceEnrollment(
        audience_id=audience.id,
        workflow_id=workflow.id,
        user_id=getattr(user, "id", None),
        status="queued",
    )
    db.session.add(job)
    db.session.commit()
    enqueue(run_enrollment, job.id)
    return job


def run_enrollment(job_id: int) -> None:
    """The queue job: claim the queued row, enroll batch by batch."""
    firm_id = claim_queued(AudienceEnrollment.__table__, job_id)
    if firm_id is None:
        return  # gone, or another copy of the job has it
    with firm_context(firm_id):
        try:
            _run(job_id)
        except Exception as exc:
            log.exception("audience enrollment %s failed", job_id)
            db.session.rollback()
            _set(job_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])


def _run(job_id: int) -> None:
    job = db.session.get(AudienceEnrollment, job_id)
    audience = db.session.get(Audience, job.audience_id)
    workflow = db.session.get(Workflow, job.workflow_id)
    if audience is None or workflow is None:
        _set(job_id, status="failed", error="the audience or the workflow is gone")
        return
    group = audience.rule_group
    total = count(group)
    _set(job_id, total=total)
    after, processed, enrolled = job.last_contact_id, job.processed, job.enrolled
    event_id = f"audience:{job_id}"
    context = {"trigger_type": "audience", "audience": audience.id, "event_id": event_id}
    while True:
        ids = page_ids(group, after, BATCH)
        if not ids:
            break
        started = enroll(workflow, ids, trigger_type="audience", event_id=event_id, context=context)
        after, processed, enrolled = ids[-1], processed + len(ids), enrolled + len(started)
        _set(job_id, last_contact_id=after, processed=processed, enrolled=enrolled, stalls=0)
    _set(job_id, status="done", processed=processed, finished_at=now())


def recover_enrollments() -> dict:
    """The periodic job (docs/ARCHITECTURE.md rule 1): a running enrollment
    whose heartbeat (its row's ``updated_at``, moved by every batch)
    stopped lost its worker, and a queued one whose job was lost (a Redis
    flush) never started; both are queued and enqueued again. That is
    safe: the job claims its row, resumes after ``last_contact_id``, and
    a batch run twice starts nobody twice. A running one that stalled
    ``STALL_LIMIT`` times in a row without finishing a batch is failed,
    with the reason on its row (the page and the API show it)."""
    table = AudienceEnrollment.__table__
    moment = now()
    stale = moment - timedelta(seconds=STALL_SECONDS)
    rows = db.session.execute(
        select(table.c.id, table.c.status, table.c.stalls).where(
            table.c.status.in_(("queued", "running")), table.c.updated_at < stale
        )
    ).all()
    lost, stalled, given_up = [], [], []
    for job_id, status, stalls in rows:
        if status == "queued":
            lost.append(job_id)
        elif stalls + 1 >= STALL_LIMIT:
            given_up.append(job_id)
        else:
            stalled.append(job_id)
    if lost:
        db.session.execute(
            update(table).where(table.c.id.in_(lost)).values(status="queued", updated_at=moment)
        )
    if stalled:
        db.session.execute(
            update(table)
            .where(table.c.id.in_(stalled))
            .values(status="queued", stalls=table.c.stalls + 1, updated_at=moment)
        )
    if given_up:
        log.error(
            "audience enrollments %s stalled %s times in a row: failed", given_up, STALL_LIMIT
        )
        db.session.execute(
            update(table)
            .where(table.c.id.in_(given_up))
            .values(
                status="failed",
                stalls=table.c.stalls + 1,
                error=f"Stopped: its worker died {STALL_LIMIT} times in a row without "
                "finishing a batch, so it was not restarted again. Start the enrollment "
                "again to retry.",
                finished_at=moment,
                updated_at=moment,
            )
        )
    db.session.commit()
    for job_id in lost + stalled:
        enqueue(run_enrollment, job_id)
    return {"requeued": len(lost) + len(stalled), "failed": len(given_up)}


def _set(job_id: int, **values) -> None:
    table = AudienceEnrollment.__table__
    db.session.execute(update(table).where(table.c.id == job_id).values(updated_at=now(), **values))
    db.session.commit()


def as_json(job: AudienceEnrollment) -> dict:
    return {
        "id": job.id,
        "audience": job.audience_id,
        "workflow": job.workflow_id,
        "status": job.status,
        "percent": job.percent,
        "total": job.total,
        "processed": job.processed,
        "enrolled": job.enrolled,
        "error": job.error,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }
