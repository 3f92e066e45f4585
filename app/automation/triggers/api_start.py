"""The API trigger's common case in one statement (PostgreSQL).

``POST .../workflows/{id}/trigger/`` is what a firm's own app calls for
every sign-up, so its usual answer -- a new execution -- is one statement
on an autocommit connection: one round trip that checks the workflow (the
current firm's, active, at the version whose entry step is cached here,
with an active published api/manual trigger), the contact (the firm's, not inside
the workflow), the idempotency key (not used in this workflow yet), inserts
the execution and its ``trigger.fired`` audit entry, and commits. A 201
thus still means the execution is committed.

Anything else (a repeated key, a contact already inside, an unknown
contact, a paused workflow, a new version) inserts nothing, and the caller
takes the full path (``helpers.start_via_api``), which finds the reason or
the execution a repeated key started. The checks are those of
``enrollment._INSERT_SELECT``; the key is ``idempotency_key_for``'s.
"""

from __future__ import annotations

import json
import threading

from sqlalchemy import text

from app.automation.engine.enrollment import NotEnrollable, entry_of
from app.clock import now
from app.extensions import db
from app.models import Workflow, WorkflowExecution
from app.models.execution import ACTIVE_STATUSES
from app.queue import kick_engine_soon
from app.tenancy import current_actor

# workflow id -> (version, entry node): a version's graph never changes, so
# its entry step is known for good; the statement checks the version.
_entries: dict[int, tuple[int, str]] = {}
_lock = threading.Lock()

_KEY = (
    "CASE WHEN wf.allow_reentry THEN CAST(wf.id AS text) || ':' || CAST(c.id AS text) || ':'"
    " || CAST(wf.trigger_id AS text) || ':' || CAST(:event_id AS varchar)"
    " ELSE CAST(wf.id AS text) || ':' || CAST(c.id AS text) || '::once' END"
)
_START = text(
    f"""
WITH wf AS (
    SELECT w.id, w.firm_id, w.version, w.allow_reentry, t.id AS trigger_id,
        t.trigger_type
    FROM workflows AS w
    JOIN published_triggers AS t ON t.workflow_id = w.id AND t.is_active
        AND t.trigger_type IN ('api', 'manual')
    WHERE w.id = :workflow_id AND w.firm_id = :firm_id AND w.status = 'active'
        AND w.version = :version
    ORDER BY t.trigger_type = 'api' DESC, t.id
    LIMIT 1
), ins AS (
    INSERT INTO workflow_executions (
        firm_id, workflow_id, version, contact_id, status, current_node,
        execution_path, context_data, trigger_type, trigger_id, event_id,
        goal_reached, idempotency_key, test_mode, wake_at, attempts, steps_taken,
        started_at, created_at, updated_at)
    SELECT wf.firm_id, wf.id, wf.version, c.id, 'running', CAST(:entry AS varchar),
        CAST('[]' AS jsonb), jsonb_build_object('trigger_type', wf.trigger_type)
            || CAST(:context AS jsonb), wf.trigger_type, wf.trigger_id, CAST(:event_id AS varchar),
        false, encode(sha256(convert_to({_KEY}, 'UTF8')), 'hex'),
        false, CAST(:moment AS timestamptz), 0, 0, CAST(:moment AS timestamptz),
        CAST(:moment AS timestamptz), CAST(:moment AS timestamptz)
    FROM wf
    JOIN contacts AS c ON c.id = :contact_id AND c.firm_id = :firm_id
    WHERE NOT EXISTS (
        SELECT 1 FROM workflow_executions AS inside
        WHERE inside.workflow_id = wf.id AND inside.contact_id = c.id
          AND NOT inside.test_mode
          AND (NOT wf.allow_reentry OR inside.status = ANY(CAST(:active AS text[]))))
      AND NOT (CAST(:keyed AS boolean) AND EXISTS (
        SELECT 1 FROM workflow_executions AS same
        WHERE same.workflow_id = wf.id AND same.event_id = CAST(:event_id AS varchar)))
    ON CONFLICT DO NOTHING
    RETURNING *
), audit AS (
    INSERT INTO audit_log (firm_id, user_id, actor, action, object_type, object_id, data,
        created_at)
    SELECT ins.firm_id, CAST(:user_id AS integer), CAST(:actor AS varchar), 'trigger.fired', 'Workflow',
        CAST(ins.workflow_id AS text),
        jsonb_build_object('workflow_id', ins.workflow_id, 'contact_id', ins.contact_id,
            'event_id', ins.event_id, 'source', 'api', 'trigger_id', ins.trigger_id,
            'trigger_type', wf.trigger_type),
        CAST(:moment AS timestamptz)
    FROM ins CROSS JOIN wf
)
SELECT * FROM ins
"""
).columns(*WorkflowExecution.__table__.c)


def _entry(workflow_id: int) -> tuple[int, str] | None:
    """(version, entry node) of the current firm's workflow, cached."""
    cached = _entries.get(workflow_id)
    if cached is not None:
        return cached

    workflow = db.session.get(Workflow, workflow_id)  # tenancy: the current firm's
    if workflow is None or not workflow.version:
        return None
    try:
        found = (workflow.version, entry_of(workflow))
    except NotEnrollable:
        return None
    finally:
        db.session.rollback()  # reads only; the start runs on its own connection
    with _lock:
        _entries[workflow_id] = found
    return found


def forget(workflow_id: int) -> None:
    with _lock:
        _entries.pop(workflow_id, None)


def start(
    firm_id: int, workflow_id: int, contact_id: int, context: dict, event_id: str, keyed: bool
) -> dict | None:
    """The new execution's row as a dict, or None when this path cannot
    start it (the full path then says why, or finds the keyed execution)."""
    if db.engine.dialect.name != "postgresql":
        return None
    cached = _entry(workflow_id)
    if cached is None:
        return None
    user_id, actor = current_actor()
    moment = now()
    params = {
        "workflow_id": workflow_id,
        "firm_id": firm_id,
        "version": cached[0],
        "entry": cached[1],
        "contact_id": contact_id,
        "context": json.dumps(
            # trigger_type: the trigger that allowed the start (the statement's).
            {"event_id": event_id, "source": "api", **context},
            default=str,
        ),
        "event_id": event_id,
        "keyed": keyed,
        "active": list(ACTIVE_STATUSES),
        "moment": moment,
        "user_id": user_id,
        "actor": actor,
    }
    # Autocommit: the statement is its own transaction, one round trip.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        row = conn.execute(_START, params).mappings().first()
    if row is None:
        forget(workflow_id)  # maybe a new version: look it up again next time
        return None

    kick_engine_soon()
    return dict(row)
