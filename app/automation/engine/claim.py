"""Claiming ready executions (docs/ARCHITECTURE.md rule 2).

A claim is a conditional UPDATE that stamps ``lease_owner`` and
``lease_until`` on up to N ready rows and returns them. PostgreSQL picks
the rows with ``FOR UPDATE SKIP LOCKED`` so concurrent workers take
disjoint batches without waiting; SQLite serialises writers, so the same
UPDATE is atomic there.

Ready means ``running`` with a free (or expired) lease, or ``waiting``
with a due ``wake_at`` and a free lease: a canceled or finished execution
is never claimed, and a row held by a live worker is never taken twice.
A claim takes a due wait as it is, without a status flip first, so a wait
that ends costs one HOT lease update (the lease columns are not indexed)
and the write-back, not a flip through every index of the table before
them. The walk resumes any execution whose row carries a ``wait_reason``.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import (
    BigInteger,
    Integer,
    Update,
    and_,
    any_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from app.clock import now
from app.extensions import db
from app.models import WorkflowExecution

table = WorkflowExecution.__table__
COLUMNS = (
    table.c.id,
    table.c.firm_id,
    table.c.workflow_id,
    table.c.version,
    table.c.contact_id,
    table.c.status,
    table.c.current_node,
    table.c.execution_path,
    table.c.context_data,
    table.c.trigger_type,
    table.c.goal_reached,
    table.c.test_mode,
    table.c.wake_at,
    table.c.wait_reason,
    table.c.attempts,
    table.c.steps_taken,
    table.c.started_at,
)


def new_owner() -> str:
    """A lease owner name unique to this claim (host, process, nonce)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:10]}"


def is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def id_in(column, ids):
    """``column IN (ids)``; on PostgreSQL ``column = ANY(:ids)``, one array
    parameter: compiling, sending and parsing 500 placeholders costs more
    than the lookup itself."""
    ids = list(ids)
    if is_postgres():
        return column == any_(bindparam(None, ids, type_=ARRAY(BigInteger())))
    return column.in_(ids)


def lease_free(moment):
    return or_(table.c.lease_until.is_(None), table.c.lease_until < moment)


def ready_clause(moment):
    """Running and held by no live worker."""
    return and_(table.c.status == "running", lease_free(moment))


def due_clause(moment):
    """A wait that has ended, held by no live worker."""
    return and_(table.c.status == "waiting", table.c.wake_at <= moment, lease_free(moment))


def claim_ready(limit: int, owner: str, ids: list[int] | None = None) -> list[dict]:
    """Lease up to ``limit`` ready executions to ``owner``; commits the
    claim at once (short locks) and returns the rows as dicts, by id.

    Neither kind starves the other: running rows (by id) take up to half
    the batch, due waits (earliest first) the rest, and running rows fill
    what the waits leave. A fan-out of 100,000 new executions thus does not
    hold back waits falling due meanwhile, nor a mass wake new ones."""
    moment = now()
    lease = timedelta(seconds=int(current_app.config.get("ENGINE_LEASE_SECONDS") or 60))

    def lease_some(kind: str, count: int) -> list[dict]:
        return _lease(conn, kind, count, owner, moment, moment + lease, ids) if count > 0 else []

    try:
        conn = db.session.connection()
        share = (limit + 1) // 2
        running = lease_some("running", share)
        # In the order of ix_executions_status_wake, so the LIMIT stops the
        # index scan at the earliest due waits.
        rows = running + lease_some("due", limit - len(running))
        if len(running) == share:
            rows += lease_some("running", limit - len(rows))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    rows.sort(key=lambda row: row["id"])
    return rows


# kind: (ready clause, order): running rows by id, due waits earliest first.
_KINDS = {"running": (ready_clause, table.c.id), "due": (due_clause, table.c.wake_at)}

# The lease statements by (dialect, kind), built once with the moment bound:
# a reused statement object is found in SQLAlchemy's compiled cache by its
# memoized key, so a claim builds no expressions (about 0.6 ms of CPU per
# statement, up to three per claim: most of a small batch's claim at a
# trickle, benchmarks/trickle.py).
_LEASES: dict[tuple[str, str], Update] = {}


# How long a process trusts its floor before scanning from the start.
FLOOR_SECONDS = 1.0


class _RunningFloor:
    """PostgreSQL: the lowest id this process last found running and free,
    where its next claim of running rows starts (docs/ARCHITECTURE.md,
    "Claims"). The rows below it had left ``running`` or were another
    worker's; their index entries stay until a vacuum, and a claim that
    began at the first id walked them all: at 850,000 of a 1,000,000
    fan-out, 76 ms before the first row, claims of 0.2-0.8 s. A row that
    becomes running below the floor (a woken wait, a released lease) is
    found by the next full scan: one a second at least, and whenever a
    claim from the floor comes back short. A hint, so a race between
    threads only costs a longer scan."""

    def __init__(self):
        self.id = 0
        self.since = 0.0

    def get(self) -> int:
        return self.id if time.monotonic() - self.since < FLOOR_SECONDS else 0

    def restart(self, rows: list[dict]) -> None:
        """After a scan from the start."""
        if rows:
            self.id, self.since = min(row["id"] for row in rows), time.monotonic()

    def advance(self, rows: list[dict]) -> None:
        if rows:
            self.id = max(self.id, min(row["id"] for row in rows))


_floor = _RunningFloor()


def _lease(conn, kind: str, limit: int, owner: str, moment, until, ids) -> list[dict]:
    """Stamp the lease on up to ``limit`` rows of ``kind`` that are ready."""
    params = {"limit": limit, "owner": owner, "until": until, "moment": moment}
    ready, order = _KINDS[kind]
    moment_param = bindparam("moment", type_=table.c.lease_until.type)
    if ids is not None:
        # A claim of given rows (a test run): rare, built as it comes.
        stmt = _lease_statement(conn.dialect.name, ready(moment_param), order, ids)
        return [dict(row._mapping) for row in conn.execute(stmt, params)]
    floored = kind == "running" and conn.dialect.name == "postgresql"
    stmt = _LEASES.get((conn.dialect.name, kind))
    if stmt is None:
        stmt = _lease_statement(conn.dialect.name, ready(moment_param), order, None, floored)
        _LEASES[(conn.dialect.name, kind)] = stmt
    if not floored:
        return [dict(row._mapping) for row in conn.execute(stmt, params)]
    floor = _floor.get()
    rows = [dict(row._mapping) for row in conn.execute(stmt, {**params, "floor": floor})]
    if floor and len(rows) < limit:
        # Short from the floor: the rest may be below it.
        rest = {**params, "floor": 0, "limit": limit - len(rows)}
        rows += [dict(row._mapping) for row in conn.execute(stmt, rest)]
        floor = 0
    if floor:
        _floor.advance(rows)
    else:
        _floor.restart(rows)
    return rows


def _lease_statement(dialect: str, ready, order, ids, floored: bool = False):
    pick = select(table.c.id).where(ready)
    if floored:
        pick = pick.where(table.c.id >= bindparam("floor", type_=BigInteger()))
    if ids is not None:
        pick = pick.where(id_in(table.c.id, ids))
    pick = pick.order_by(order).limit(bindparam("limit", type_=Integer()))
    if dialect == "postgresql":
        # = ANY(ARRAY(pick)): the SKIP LOCKED pick runs exactly once (an
        # InitPlan; as IN (subquery) the planner may re-run it and lease more
        # than limit), and the update finds its rows by id whatever the
        # statistics say (a join to a CTE went nested-loop, seconds per
        # claim, right after a bulk enrollment, before ANALYZE).
        # The pick holds the rows' locks, so no recheck outside (with one,
        # the planner scanned every running row per claim).
        picked = func.array(pick.with_for_update(skip_locked=True).scalar_subquery())
        where = (table.c.id == func.any(picked),)
    else:
        where = (table.c.id.in_(pick.scalar_subquery()), ready)
    # A lease still stamped on a ready row was not given back: it expired
    # (every normal end of a batch clears it), counted for the monitor.
    expired = case((table.c.lease_until.is_not(None), 1), else_=0)
    return (
        update(table)
        .where(*where)
        .values(
            lease_owner=bindparam("owner"),
            lease_until=bindparam("until"),
            lease_expiries=table.c.lease_expiries + expired,
        )
        .returning(*COLUMNS)
    )


def release(owner: str, ids: list[int]) -> None:
    """Give back leases without writing (e.g. a batch that could not load)."""
    if not ids:
        return
    stmt = (
        update(table)
        .where(id_in(table.c.id, sorted(ids)), table.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )
    db.session.connection().execute(stmt)
    db.session.commit()
