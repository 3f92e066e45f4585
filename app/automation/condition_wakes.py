"""Waking wait-for-condition executions when their contact changes.

A ``wait_condition`` step re-checks its rules when anything about the
contact changes: an event through the trigger bus (tags, lists, fields,
deals, e-mail opens and clicks, form posts, page visits) or a CRM step of
any workflow. Such a change makes the contact's condition waits due now;
the engine claims them like any due wait. The periodic recheck
(``CONDITION_RECHECK_SECONDS``) remains as a safety net for facts that
change without an event.

The wake also clears the lease: a worker walking one of these executions
right now evaluated the rules on facts from before the change, and its
write-back is fenced out (``engine_write.owned_ids``), so the execution is
walked again on the new facts instead of sleeping until the next recheck.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text, update

from app.automation.engine_claim import id_in
from app.clock import now
from app.extensions import db
from app.models import WorkflowExecution
from app.models.execution import CONDITION_WAIT_WHERE

table = WorkflowExecution.__table__


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
