"""Data that grows for years: the monthly partitions of flow states and events.

``run_retention`` is a periodic job (app/jobs.py). On PostgreSQL it makes
the monthly partitions of ``contact_flow_states`` (and of ``event_log``
and ``tracking_events``, with EVENT_RETENTION_DAYS) for this month and
PARTITION_MONTHS_AHEAD months ahead, and detaches and drops every month
whose rows are all older than FLOW_STATE_RETENTION_DAYS: one catalog
change a month, whatever the month holds (app/models/partitioning.py). On
SQLite, which keeps the plain table, it deletes the old rows in batches of
DELETE_BATCH, at most DELETE_BATCHES a run, so no run holds the one writer
long. The analytics' stored daily rows outlive the flow states they were
computed from (docs/OPERATIONS.md "Data that grows"). The events' replay
keys (``event_keys``, one unpartitioned table) are deleted in batches once
the events they guard are gone, and REST hook deliveries in batches past
EVENT_RETENTION_DAYS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, text

from app.clock import now
from app.extensions import db
from app.models import (
    ContactFlowState,
    EventKey,
    EventLog,
    HookDelivery,
    TrackingEvent,
    partitioning,
)
from app.models.base import UTCDateTime

log = logging.getLogger(__name__)

DELETE_BATCH = 10_000
DELETE_BATCHES = 50
# A partition change waits at most this long for the table's lock (behind
# a long analytics scan, say) rather than queue every insert behind it; the
# next run tries again.
LOCK_TIMEOUT = "5s"


@dataclass
class TableResult:
    created: list[date] = field(default_factory=list)
    dropped: list[date] = field(default_factory=list)
    deleted: int = 0


@dataclass
class RetentionResult(TableResult):
    """The flow states' figures, and each event table's in ``events``."""

    events: dict[str, TableResult] = field(default_factory=dict)
    keys_deleted: int = 0
    hook_deliveries_deleted: int = 0


def retention_cutoff(moment: datetime | None = None) -> datetime:
    """Flow states entered before this are past retention."""
    days = int(current_app.config["FLOW_STATE_RETENTION_DAYS"])
    return (moment or now()) - timedelta(days=days)


def event_cutoff(moment: datetime | None = None) -> datetime:
    """Events (and tracking events) created before this are past retention."""
    days = int(current_app.config["EVENT_RETENTION_DAYS"])
    return (moment or now()) - timedelta(days=days)


def run_retention() -> RetentionResult:
    moment = now()
    result = RetentionResult()
    _table(ContactFlowState.__table__.name, retention_cutoff(moment), moment, result)
    cutoff = event_cutoff(moment)
    for model in (EventLog, TrackingEvent):
        result.events[model.__tablename__] = _table(
            model.__tablename__, cutoff, moment, TableResult()
        )
    # A key goes once no event row can be left that it guards: on
    # PostgreSQL the month holding the cutoff is kept whole.
    keys_before = cutoff
    if db.engine.dialect.name == "postgresql":
        month = partitioning.month_start(cutoff)
        keys_before = datetime(month.year, month.month, 1, tzinfo=UTC)
    result.keys_deleted = _delete_in_batches(
        db.engine, EventKey.__tablename__, "created_at", keys_before
    )
    # REST hook deliveries (finished long before: the last retry is hours
    # after the fact) go with the events they reported.
    result.hook_deliveries_deleted = _delete_in_batches(
        db.engine, HookDelivery.__tablename__, "created_at", cutoff
    )
    return result


def _table(table: str, cutoff: datetime, moment: datetime, result: TableResult) -> TableResult:
    column = partitioning.PARTITIONED[table]
    engine = db.engine
    if engine.dialect.name != "postgresql":
        result.deleted = _delete_in_batches(engine, table, column, cutoff)
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
    result.deleted = _delete_in_batches(engine, f"{table}_default", column, cutoff)
    if result.created or result.dropped or result.deleted:
        log.info(
            "%s: partitions created %s, dropped %s, %d old rows deleted",
            table,
            [m.isoformat() for m in result.created],
            [m.isoformat() for m in result.dropped],
            result.deleted,
        )
    return result


def _delete_in_batches(engine, table: str, column: str, cutoff: datetime) -> int:
    deleted = 0
    for _ in range(DELETE_BATCHES):
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                sql = (
                    f'DELETE FROM "{table}" WHERE ctid IN (SELECT ctid FROM "{table}" '
                    f'WHERE "{column}" < :cutoff LIMIT :n)'
                )
            else:
                sql = (
                    f'DELETE FROM "{table}" WHERE rowid IN (SELECT rowid FROM "{table}" '
                    f'WHERE "{column}" < :cutoff LIMIT :n)'
                )
            stmt = text(sql).bindparams(
                bindparam("cutoff", cutoff, type_=UTCDateTime()), bindparam("n", DELETE_BATCH)
            )
            count = conn.execute(stmt).rowcount
        deleted += count
        if count < DELETE_BATCH:
            break
    return deleted
