"""Enrollment: contacts enter a workflow as new executions, set-based.

One INSERT per chunk of contacts, with the idempotency key as a unique
constraint (``ON CONFLICT DO NOTHING``): the same event delivered twice, or
concurrently, starts one execution. ``allow_reentry=false`` (the default)
means a contact enters a workflow once, ever; this is enforced by the key
itself (it then leaves out trigger and event), so two different events
racing for the same contact still start one execution.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from app.automation.definition import Graph, definition_of
from app.clock import now
from app.extensions import db
from app.models import Contact, Workflow, WorkflowExecution, WorkflowVersion
from app.models.execution import ACTIVE_STATUSES, idempotency_key_for

CHUNK = 1000


class NotEnrollable(Exception):
    """The workflow cannot take contacts (no entry step, not active...)."""


def workflow_definition(workflow: Workflow, version: int | None = None) -> dict:
    """The graph executions of ``version`` run on (the live graph for a
    workflow never published, e.g. a test run of a draft)."""
    number = workflow.version if version is None else version
    if number:
        stmt = select(WorkflowVersion.definition).where(
            WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.number == number
        )
        definition = db.session.scalar(stmt)
        if definition is not None:
            return definition
    return definition_of(workflow)


def enrollment_key(workflow: Workflow, contact_id: int, trigger_id, event_id) -> str:
    if not workflow.allow_reentry:
        return idempotency_key_for(workflow.id, contact_id, None, "once")
    return idempotency_key_for(workflow.id, contact_id, trigger_id, event_id or uuid.uuid4().hex)


def enroll(
    workflow: Workflow,
    contact_ids: Iterable[int],
    *,
    trigger=None,
    trigger_type: str | None = None,
    event_id: str | None = None,
    context: dict | None = None,
    test_mode: bool = False,
    require_active: bool = True,
) -> list[int]:
    """Start one execution per contact; returns the ids of those started.

    Contacts of another firm, contacts already in the workflow (or ever in
    it, without re-entry) and repeats of the same event are skipped.
    Commits, then tells the workers there is work."""
    if require_active and not test_mode and workflow.status != "active":
        raise NotEnrollable(f"workflow {workflow.id} is {workflow.status}, not active")
    definition = workflow_definition(workflow)
    entry = Graph(definition).entry()
    if entry is None:
        raise NotEnrollable(f"workflow {workflow.id} has no single entry step")

    started: list[int] = []
    ids = list(dict.fromkeys(int(cid) for cid in contact_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = _eligible(workflow, ids[start : start + CHUNK], test_mode)
        if chunk:
            started.extend(
                _insert(workflow, chunk, entry, trigger, trigger_type, event_id, context, test_mode)
            )
    db.session.commit()
    if started:
        from app.queue import kick_engine

        kick_engine()
    return started


def _eligible(workflow: Workflow, contact_ids: Sequence[int], test_mode: bool) -> list[int]:
    # The tenancy rule drops contacts of other firms here.
    known = set(db.session.scalars(select(Contact.id).where(Contact.id.in_(contact_ids))))
    if test_mode:
        return [cid for cid in contact_ids if cid in known]
    busy = select(WorkflowExecution.contact_id).where(
        WorkflowExecution.workflow_id == workflow.id,
        WorkflowExecution.contact_id.in_(contact_ids),
        WorkflowExecution.test_mode.is_(False),
    )
    if workflow.allow_reentry:
        busy = busy.where(WorkflowExecution.status.in_(ACTIVE_STATUSES))
    taken = set(db.session.scalars(busy))
    return [cid for cid in contact_ids if cid in known and cid not in taken]


def _insert(workflow, contact_ids, entry, trigger, trigger_type, event_id, context, test_mode):
    moment = now()
    trigger_id = getattr(trigger, "id", None)
    rows = [
        {
            "firm_id": workflow.firm_id,
            "workflow_id": workflow.id,
            "version": workflow.version or 0,
            "contact_id": contact_id,
            "status": "running",
            "current_node": entry,
            "execution_path": [],
            "context_data": dict(context or {}),
            "trigger_type": trigger_type or getattr(trigger, "trigger_type", None) or "manual",
            "trigger_id": trigger_id,
            "event_id": event_id,
            "goal_reached": False,
            "idempotency_key": (
                idempotency_key_for(workflow.id, contact_id, "test", uuid.uuid4().hex)
                if test_mode
                else enrollment_key(workflow, contact_id, trigger_id, event_id)
            ),
            "test_mode": test_mode,
            "wake_at": moment,
            "attempts": 0,
            "steps_taken": 0,
            "started_at": moment,
            "created_at": moment,
            "updated_at": moment,
        }
        for contact_id in contact_ids
    ]
    table = WorkflowExecution.__table__
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(table)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(table.c.id)
    )
    return list(db.session.scalars(stmt))
