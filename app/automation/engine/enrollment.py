"""Enrollment: contacts enter a workflow as new executions, set-based.

One INSERT per chunk of contacts, with the idempotency key as a unique
constraint (``ON CONFLICT DO NOTHING``): the same event delivered twice, or
concurrently, starts one execution. ``allow_reentry=false`` (the default)
means a contact enters a workflow once, ever; this is enforced by the key
itself (it then leaves out trigger and event), so two different events
racing for the same contact still start one execution.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite

from app.automation.graph.definition import Graph, definition_of
from app.automation.operations import metrics
from app.clock import now
from app.extensions import db
from app.models import Contact, Workflow, WorkflowExecution, WorkflowVersion
from app.models.execution import ACTIVE_STATUSES, idempotency_key_for

CHUNK = 1000
# One unnest-based INSERT ... SELECT handles this many contacts on PostgreSQL.
PG_CHUNK = 5000


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
    entry = entry_of(workflow)
    ids = list(dict.fromkeys(int(cid) for cid in contact_ids))
    started = [
        row[0]
        for row in start_entries(
            workflow,
            entry,
            [(cid, event_id, context) for cid in ids],
            trigger=trigger,
            trigger_type=trigger_type,
            test_mode=test_mode,
        )
    ]
    db.session.commit()
    if started:
        from app.queue import kick_engine

        kick_engine()
    return started


# (workflow id, created_at, version) -> entry node. A published version
# never changes, so its entry step is read once per process, not per event
# (the bus starts workflows one event at a time: an open pixel, a form post).
# created_at tells a new workflow from a deleted one whose id SQLite reuses.
_entries: dict[tuple, str] = {}


def entry_of(workflow: Workflow) -> str:
    """The node new executions start at; raises NotEnrollable."""
    key = (workflow.id, workflow.created_at, workflow.version)
    entry = _entries.get(key) if workflow.version else None
    if entry is None:
        entry = Graph(workflow_definition(workflow)).entry()
        if entry is None:
            raise NotEnrollable(f"workflow {workflow.id} has no single entry step")
        if workflow.version:
            if len(_entries) > 4096:
                _entries.clear()
            _entries[key] = entry
    return entry


def start_entries(
    workflow: Workflow,
    entry: str,
    entries: Sequence[tuple[int, str | None, dict | None]],
    *,
    trigger=None,
    trigger_type: str | None = None,
    test_mode: bool = False,
) -> list[tuple[int, int, str | None]]:
    """Insert executions for ``(contact_id, event_id, context)`` entries;
    returns ``(execution_id, contact_id, event_id)`` of those started.

    The first entry per contact counts (an execution started by the first
    keeps the contact busy for the rest). Does not commit: the caller
    commits with whatever else belongs to the same transaction (the event
    log, the audit entries)."""
    first: dict[int, tuple[int, str | None, dict | None]] = {}
    for contact_id, event_id, context in entries:
        first.setdefault(int(contact_id), (int(contact_id), event_id, context))
    # By contact: concurrent enrollments meet in the one-active-execution
    # index in the same order, so they wait for each other, never in a cycle.
    pending = sorted(first.values(), key=lambda row: row[0])
    postgres = db.session.get_bind().dialect.name == "postgresql"
    chunk = PG_CHUNK if postgres else CHUNK
    started: list[tuple[int, int, str | None]] = []
    for start in range(0, len(pending), chunk):
        part = pending[start : start + chunk]
        if postgres:
            started.extend(_insert_select(workflow, part, entry, trigger, trigger_type, test_mode))
            continue
        eligible = set(_eligible(workflow, [cid for cid, _, _ in part], test_mode))
        part = [row for row in part if row[0] in eligible]
        if part:
            started.extend(_insert(workflow, part, entry, trigger, trigger_type, test_mode))
    if not test_mode:
        metrics.record_enrolled(len(started))
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


def _key(workflow: Workflow, contact_id: int, trigger_id, event_id, test_mode: bool) -> str:
    if test_mode:
        return idempotency_key_for(workflow.id, contact_id, "test", uuid.uuid4().hex)
    return enrollment_key(workflow, contact_id, trigger_id, event_id)


def _insert(workflow, part, entry, trigger, trigger_type, test_mode):
    """The portable path: one multi-row INSERT per chunk (after _eligible)."""
    moment = now()
    trigger_id = getattr(trigger, "id", None)
    kind = trigger_type or getattr(trigger, "trigger_type", None) or "manual"
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
            "trigger_type": kind,
            "trigger_id": trigger_id,
            "event_id": event_id,
            "goal_reached": False,
            "idempotency_key": _key(workflow, contact_id, trigger_id, event_id, test_mode),
            "test_mode": test_mode,
            "wake_at": moment,
            "attempts": 0,
            "steps_taken": 0,
            "started_at": moment,
            "created_at": moment,
            "updated_at": moment,
        }
        for contact_id, event_id, context in part
    ]
    table = WorkflowExecution.__table__
    insert = (
        postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    stmt = (
        insert(table)
        .values(rows)
        # The idempotency key (a repeated event) or the one-active-execution
        # index (the contact is inside already, maybe since a moment ago).
        .on_conflict_do_nothing()
        .returning(table.c.id, table.c.contact_id, table.c.event_id)
    )
    return [tuple(row) for row in db.session.execute(stmt)]


# PostgreSQL: the eligibility checks and the insert are one statement per
# chunk. The contacts join keeps other firms' (and deleted) contacts out;
# NOT EXISTS skips contacts already inside (or ever inside, without
# re-entry); the unique idempotency key and the one-active-execution index
# settle concurrent enrollments (ON CONFLICT waits for the other start to
# commit or roll back, then skips or inserts).
# The key is computed here, the same SHA-256 as ``idempotency_key_for``
# (a random one where Python would use a fresh uuid), so no per-contact
# work happens in Python: the contact ids travel as one array literal.
_KEY_RAW = (
    "CAST(:workflow_id AS text) || ':' || CAST(pick.contact_id AS text) || ':' || :key_trigger"
    " || ':' || (CASE WHEN :reentry THEN pick.event_id ELSE 'once' END)"
)
_INSERT_SELECT = f"""
INSERT INTO workflow_executions (
    firm_id, workflow_id, version, contact_id, status, current_node,
    execution_path, context_data, trigger_type, trigger_id, event_id,
    goal_reached, idempotency_key, test_mode, wake_at, attempts, steps_taken,
    started_at, created_at, updated_at)
SELECT :firm_id, :workflow_id, :version, pick.contact_id, 'running', :entry,
    CAST('[]' AS jsonb), pick.context, :trigger_type, :trigger_id, pick.event_id,
    false,
    CASE WHEN :test_mode OR (:reentry AND coalesce(pick.event_id, '') = '')
         THEN encode(sha256(convert_to(CAST(gen_random_uuid() AS text), 'UTF8')), 'hex')
         ELSE encode(sha256(convert_to({_KEY_RAW}, 'UTF8')), 'hex') END,
    :test_mode, :moment, 0, 0, :moment, :moment, :moment
FROM {{source}}
JOIN contacts ON contacts.id = pick.contact_id AND contacts.firm_id = :firm_id
WHERE :test_mode OR NOT EXISTS (
    SELECT 1 FROM workflow_executions AS inside
    WHERE inside.workflow_id = :workflow_id
      AND inside.contact_id = pick.contact_id
      AND NOT inside.test_mode
      AND (NOT :reentry OR inside.status = ANY(CAST(:active AS text[]))))
ORDER BY pick.contact_id
ON CONFLICT DO NOTHING
RETURNING id, contact_id, event_id
"""
# One event and context for all (a fan-out), or one per contact (the bus).
_SAME = (
    "(SELECT contact_id, CAST(:event_id AS text) AS event_id, CAST(:context AS jsonb) AS context"
    " FROM unnest(CAST(:contact_ids AS bigint[])) AS ids(contact_id)) AS pick"
)
_EACH = (
    "unnest(CAST(:contact_ids AS bigint[]), CAST(:event_ids AS text[]),"
    " CAST(:contexts AS jsonb[])) AS pick(contact_id, event_id, context)"
)


def _insert_select(workflow, part, entry, trigger, trigger_type, test_mode):
    trigger_id = getattr(trigger, "id", None)
    params = {
        "firm_id": workflow.firm_id,
        "workflow_id": workflow.id,
        "version": workflow.version or 0,
        "entry": entry,
        "trigger_type": trigger_type or getattr(trigger, "trigger_type", None) or "manual",
        "trigger_id": trigger_id,
        # idempotency_key_for(workflow, contact, trigger or "", event or "")
        "key_trigger": str(trigger_id or "") if workflow.allow_reentry else "",
        "test_mode": bool(test_mode),
        "reentry": bool(workflow.allow_reentry),
        "active": list(ACTIVE_STATUSES),
        "moment": now(),
        "contact_ids": "{" + ",".join(str(int(cid)) for cid, _, _ in part) + "}",
    }
    _, event_id, context = part[0]
    if all(row[1] == event_id and row[2] is context for row in part):
        params["event_id"] = event_id
        params["context"] = json.dumps(context or {}, default=str)
        sql = _INSERT_SELECT.replace("{source}", _SAME)
    else:
        texts: dict[int, str] = {}  # one JSON text per distinct context object
        params["event_ids"] = [row[1] for row in part]
        params["contexts"] = [
            texts.setdefault(id(row[2]), json.dumps(row[2] or {}, default=str)) for row in part
        ]
        sql = _INSERT_SELECT.replace("{source}", _EACH)
    return [tuple(row) for row in db.session.execute(text(sql), params)]
