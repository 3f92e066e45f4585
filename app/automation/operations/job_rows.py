"""Job rows: a background job whose progress lives in its own table row
(forecasts, audience enrollments). The queue may hand a job out twice (a
retry, a recovery after a lost job); the row's ``queued`` -> ``running``
step is the claim, so only one copy runs."""

from __future__ import annotations

from sqlalchemy import Table, select, update

from app.clock import now
from app.extensions import db


def claim_queued(table: Table, job_id: int, **values) -> int | None:
    """Move the queued row ``job_id`` of ``table`` to ``running`` (with
    ``values`` besides) and commit; returns its firm id, or None when the
    row is gone or another copy of the job claimed it first."""
    conn = db.session.connection()
    firm_id = conn.execute(select(table.c.firm_id).where(table.c.id == job_id)).scalar()
    if firm_id is None:
        return None
    claimed = conn.execute(
        update(table)
        .where(table.c.id == job_id, table.c.status == "queued")
        .values(status="running", updated_at=now(), **values)
    ).rowcount
    db.session.commit()
    return firm_id if claimed else None
