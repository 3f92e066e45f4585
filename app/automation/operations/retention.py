"""Data that grows for years: the flow states' monthly partitions.

``run_retention`` is a periodic job (app/jobs.py). On PostgreSQL it makes
the monthly partitions of ``contact_flow_states`` for this month and
PARTITION_MONTHS_AHEAD months ahead, and detaches and drops every month
whose rows are all older than FLOW_STATE_RETENTION_DAYS: one catalog
change a month, whatever the month holds (app/models/partitioning.py). On
SQLite, which keeps the plain table, it deletes the old rows in batches of
DELETE_BATCH, at most DELETE_BATCHES a run, so no run holds the one writer
long. The analytics' stored daily rows outlive the flow states they were
computed from (docs/OPERATIONS.md "Data that grows").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, text

from app.clock import now
from app.extensions import db
from app.models import ContactFlowState, partitioning
from app.models.base import UTCDateTime

log = logging.getLogger(__name__)

DELETE_BATCH = 10_000
DELETE_BATCHES = 50
# A partition change waits at most this long for the table's lock (behind
# a long analytics scan, say) rather than queue every insert behind it; the
# next run tries again.
LOCK_TIMEOUT = "5s"


@dataclass
class RetentionResult:
    created: list[date] = field(default_factory=list)
    dropped: list[date] = field(default_factory=list)
    deleted: int = 0


def retention_cutoff(moment: datetime | None = None) -> datetime:
    """Flow states entered before this are past retention."""
    days = int(current_app.config["FLOW_STATE_RETENTION_DAYS"])
    return (moment or now()) - timedelta(days=days)


def run_retention() -> RetentionResult:
    moment = now()
    cutoff = retention_cutoff(moment)
    table = ContactFlowState.__table__.name
    result = RetentionResult()
    engine = db.engine
    if engine.dialect.name != "postgresql":
        result.deleted = _delete_in_batches(engine, table, cutoff)
        return result
    ahead = int(current_app.config["PARTITION_MONTHS_AHEAD"])
    first = partitioning.month_start(moment)
    with engine.begin() as conn:
        conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        result.created = partitioning.create_partitions(
            conn, table, first, partitioning.add_months(first, ahead)
        )
    with engine.begin() as conn:
        conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        result.dropped = partitioning.drop_partitions_before(conn, table, cutoff)
    # What the DEFAULT partition holds past retention (rows written for a
    # month that had no partition yet): rare, and deleted like SQLite's.
    result.deleted = _delete_in_batches(engine, f"{table}_default", cutoff)
    if result.created or result.dropped or result.deleted:
        log.info(
            "flow states: partitions created %s, dropped %s, %d old rows deleted",
            [m.isoformat() for m in result.created],
            [m.isoformat() for m in result.dropped],
            result.deleted,
        )
    return result


def _delete_in_batches(engine, table: str, cutoff: datetime) -> int:
    deleted = 0
    for _ in range(DELETE_BATCHES):
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                sql = (
                    f'DELETE FROM "{table}" WHERE ctid IN (SELECT ctid FROM "{table}" '
                    "WHERE entered_at < :cutoff LIMIT :n)"
                )
            else:
                sql = (
                    f'DELETE FROM "{table}" WHERE rowid IN (SELECT rowid FROM "{table}" '
                    "WHERE entered_at < :cutoff LIMIT :n)"
                )
            stmt = text(sql).bindparams(
                bindparam("cutoff", cutoff, type_=UTCDateTime()), bindparam("n", DELETE_BATCH)
            )
            count = conn.execute(stmt).rowcount
        deleted += count
        if count < DELETE_BATCH:
            break
    return deleted
