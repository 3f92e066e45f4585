"""SQL aggregates over executions, flow states, the outbox and tracking.

Every number is computed by the database (GROUP BY, conditional sums,
``percentile_cont``), so a workflow with a million flow states costs a few
queries, never a million Python objects. Statements are ORM-enabled
selects, so the tenancy hook (app/tenancy.py) adds the firm filter; nothing
here filters by firm by hand.

Periods: an execution belongs to a period when it *started* in it
(``[start 00:00 UTC, end + 1 day 00:00 UTC)``); its flow states, messages
and tracking events follow it, whenever they happened. Test runs never
count.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, or_, select

from app.clock import now
from app.extensions import db
from app.models import ContactFlowState, OutboxMessage, TrackingEvent, WorkflowExecution
from app.models.execution import ACTIVE_STATUSES

E = WorkflowExecution
S = ContactFlowState

# An active execution whose wake-up is this overdue is "stuck": nothing is
# moving it, so for drop-off purposes it stopped where it is.
STUCK_AFTER = timedelta(days=1)
# E-mail "sent": handed to SMTP, or recorded where no transport is set up.
SENT_STATUSES = ("sent", "recorded")
TRACKED_KINDS = {
    "open": "opened",
    "click": "clicked",
    "unsubscribe": "unsubscribed",
    "bounce": "bounced",
}


class Period:
    """Executions of one workflow started between two dates (UTC, inclusive)."""

    def __init__(self, workflow_id: int, start: date | None = None, end: date | None = None):
        self.workflow_id = workflow_id
        self.start = start
        self.end = end
        self.lo = datetime.combine(start, time.min, tzinfo=UTC) if start else None
        self.hi = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC) if end else None

    def execution_filter(self) -> list:
        conditions = [E.workflow_id == self.workflow_id, E.test_mode.is_(False)]
        if self.lo is not None:
            conditions.append(E.started_at >= self.lo)
        if self.hi is not None:
            conditions.append(E.started_at < self.hi)
        return conditions

    def execution_ids(self):
        return select(E.id).where(*self.execution_filter())

    def states(self, *columns):
        """A select over the period's flow states (joined to executions only
        when a period or the test-run exclusion needs them)."""
        stmt = select(*columns).select_from(S).where(S.workflow_id == self.workflow_id)
        if self.lo is None and self.hi is None:
            tests = select(E.id).where(E.workflow_id == self.workflow_id, E.test_mode.is_(True))
            return stmt.where(S.execution_id.not_in(tests))
        stmt = stmt.join(E, E.id == S.execution_id).where(*self.execution_filter())
        if self.lo is not None:
            # Implied by the join (states come after their execution's start),
            # but lets the (workflow_id, entered_at) index narrow the scan.
            stmt = stmt.where(S.entered_at >= self.lo)
        return stmt


def dialect() -> str:
    return db.session.get_bind().dialect.name


def seconds_between(later, earlier):
    """``later - earlier`` in seconds, as a SQL expression."""
    if dialect() == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float)
    # julianday() is a float of days: round off its sub-millisecond noise.
    return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)


def goal_hit():
    """An execution that reached a goal (it may go on when exit_on_goal is off)."""
    return or_(E.goal_reached.is_(True), E.status == "goal_reached")


def ended_without_goal(at: datetime | None = None):
    """Executions that stopped short: failed, canceled, completed without a
    goal, or stuck (active but overdue by more than STUCK_AFTER)."""
    overdue = (at or now()) - STUCK_AFTER
    return or_(
        E.status.in_(("failed", "canceled")),
        and_(E.status == "completed", E.goal_reached.is_(False)),
        and_(E.status.in_(ACTIVE_STATUSES), E.wake_at < overdue),
    )


def _int(value) -> int:
    return int(value or 0)


def execution_totals(period: Period) -> dict[str, int]:
    done = E.status.in_(("completed", "goal_reached"))
    stmt = select(
        func.count(),
        func.sum(case((done, 1), else_=0)),
        func.sum(case((E.status == "failed", 1), else_=0)),
        func.sum(case((and_(done, goal_hit()), 1), else_=0)),
        func.sum(case((E.status.in_(ACTIVE_STATUSES), 1), else_=0)),
        func.sum(case((E.status == "canceled", 1), else_=0)),
    ).where(*period.execution_filter())
    total, completed, failed, goals, active, canceled = db.session.execute(stmt).one()
    return {
        "total": _int(total),
        "completed": _int(completed),
        "failed": _int(failed),
        "goal_reached": _int(goals),
        "active": _int(active),
        "canceled": _int(canceled),
    }


def _completion_seconds():
    return seconds_between(E.completed_at, E.started_at)


def _completed_filter(period: Period) -> list:
    return [
        *period.execution_filter(),
        E.status.in_(("completed", "goal_reached")),
        E.completed_at.is_not(None),
    ]


def completion_times(period: Period) -> tuple[float | None, float | None]:
    """(average, median) seconds from start to end of executions that ended
    without failure."""
    secs = _completion_seconds()
    where = _completed_filter(period)
    average = db.session.scalar(select(func.avg(secs)).where(*where))
    if dialect() == "postgresql":
        median = db.session.scalar(
            select(func.percentile_cont(0.5).within_group(secs)).where(*where)
        )
    else:
        # SQLite has no percentile: the middle one or two values of the
        # ordered list, picked with LIMIT/OFFSET computed from the count.
        n = select(func.count()).select_from(E).where(*where).scalar_subquery()
        middle = (
            select(secs.label("secs"))
            .where(*where)
            .order_by(secs)
            .limit(literal(2) - n % 2)
            .offset((n - 1) // 2)
            .subquery()
        )
        median = db.session.scalar(select(func.avg(middle.c.secs)))
    return (
        float(average) if average is not None else None,
        float(median) if median is not None else None,
    )


def completion_histogram(period: Period, buckets: int = 20) -> list[dict[str, Any]]:
    """Completion times grouped into equal-width buckets, in the database."""
    secs = _completion_seconds()
    where = _completed_filter(period)
    low, high = db.session.execute(select(func.min(secs), func.max(secs)).where(*where)).one()
    if low is None:
        return []
    low, high = float(low), float(high)
    width = max((high - low) / buckets, 1e-9)
    index = cast(func.floor((secs - low) / width), Float)
    bucket = case((index >= buckets, buckets - 1), else_=index).label("bucket")
    rows = db.session.execute(
        select(bucket, func.count()).where(*where).group_by(bucket).order_by(bucket)
    ).all()
    return [
        {"start": low + int(b) * width, "end": low + (int(b) + 1) * width, "count": int(count)}
        for b, count in rows
    ]


def node_stats(period: Period) -> dict[str, dict[str, Any]]:
    """Per node: visits, outcomes, exits onward and average time spent."""
    spent = seconds_between(S.exited_at, S.entered_at)
    timed = S.exited_at.is_not(None)
    stmt = period.states(
        S.node_id,
        func.count(),
        func.sum(case((S.action_status == "success", 1), else_=0)),
        func.sum(case((S.action_status == "failed", 1), else_=0)),
        func.sum(case((S.action_status == "skipped", 1), else_=0)),
        func.sum(case((S.next_node.is_not(None), 1), else_=0)),
        func.sum(case((timed, 1), else_=0)),
        func.sum(case((timed, spent), else_=None)),
    ).group_by(S.node_id)
    result = {}
    for node_id, visits, ok, failed, skipped, onward, n_timed, total_spent in db.session.execute(
        stmt
    ):
        result[node_id] = {
            "visits": _int(visits),
            "successes": _int(ok),
            "failures": _int(failed),
            "skipped": _int(skipped),
            "exited": _int(onward),
            "timed": _int(n_timed),
            "time_spent_seconds": float(total_spent or 0.0),
        }
    return result


def transition_counts(period: Period) -> dict[tuple[str, str], int]:
    """How many times contacts moved from one node to the next."""
    stmt = (
        period.states(S.node_id, S.next_node, func.count())
        .where(S.next_node.is_not(None))
        .group_by(S.node_id, S.next_node)
    )
    return {(source, target): _int(n) for source, target, n in db.session.execute(stmt)}


def stop_counts(period: Period, at: datetime | None = None) -> dict[str, int]:
    """Per node, the executions that stopped there short of a goal.

    The node is the execution's ``current_node``; when an engine cleared it,
    the node of its last flow state (looked up only for those rows)."""
    last_state = (
        select(S.node_id)
        .where(S.execution_id == E.id)
        .order_by(S.id.desc())
        .limit(1)
        .correlate(E)
        .scalar_subquery()
    )
    node = func.coalesce(E.current_node, last_state).label("node")
    stmt = (
        select(node, func.count())
        .where(*period.execution_filter(), ended_without_goal(at))
        .group_by(node)
    )
    return {key: _int(n) for key, n in db.session.execute(stmt) if key is not None}


def waiting_counts(workflow_id: int) -> dict[str, int]:
    """Executions in progress, per the node they are at right now."""
    stmt = (
        select(E.current_node, func.count())
        .where(
            E.workflow_id == workflow_id,
            E.test_mode.is_(False),
            E.status.in_(ACTIVE_STATUSES),
        )
        .group_by(E.current_node)
    )
    return {key: _int(n) for key, n in db.session.execute(stmt) if key is not None}


def visit_counts(workflow_id: int) -> dict[str, int]:
    stmt = Period(workflow_id).states(S.node_id, func.count()).group_by(S.node_id)
    return {key: _int(n) for key, n in db.session.execute(stmt)}


def variant_counts(period: Period) -> dict[str, dict[str, dict[str, int]]]:
    """Per split node and variant: contacts entered and goal conversions."""
    stmt = (
        select(
            S.node_id,
            S.variant,
            func.count(),
            func.sum(case((goal_hit(), 1), else_=0)),
        )
        .select_from(S)
        .join(E, E.id == S.execution_id)
        .where(S.workflow_id == period.workflow_id, S.variant.is_not(None))
        .where(*period.execution_filter())
        .group_by(S.node_id, S.variant)
    )
    result: dict[str, dict[str, dict[str, int]]] = {}
    for node_id, variant, entered, converted in db.session.execute(stmt):
        result.setdefault(node_id, {})[variant] = {
            "entered": _int(entered),
            "conversions": _int(converted),
        }
    return result


def email_counts(period: Period) -> dict[str, dict[str, int]]:
    """Per e-mail node: messages sent and unique opens, clicks,
    unsubscribes and bounces (one per execution and kind)."""
    ids = period.execution_ids()
    sent_stmt = (
        select(
            OutboxMessage.node_id,
            func.sum(case((OutboxMessage.status.in_(SENT_STATUSES), 1), else_=0)),
        )
        .where(
            OutboxMessage.workflow_id == period.workflow_id,
            OutboxMessage.channel == "email",
            OutboxMessage.execution_id.in_(ids),
        )
        .group_by(OutboxMessage.node_id)
    )
    result: dict[str, dict[str, int]] = {}
    for node_id, sent in db.session.execute(sent_stmt):
        result[node_id] = {"sent": _int(sent), **{name: 0 for name in TRACKED_KINDS.values()}}
    T = TrackingEvent
    events_stmt = (
        select(T.node_id, T.kind, func.count(func.distinct(T.execution_id)))
        .where(
            T.workflow_id == period.workflow_id,
            T.kind.in_(tuple(TRACKED_KINDS)),
            T.execution_id.in_(ids),
        )
        .group_by(T.node_id, T.kind)
    )
    for node_id, kind, n in db.session.execute(events_stmt):
        row = result.setdefault(node_id, {"sent": 0, **{k: 0 for k in TRACKED_KINDS.values()}})
        row[TRACKED_KINDS[kind]] = _int(n)
    return result


def goal_conversions(workflow_id: int, goal_node_key: str | None) -> tuple[int, int]:
    """(executions, conversions) over the workflow's whole history: a
    conversion is an execution that reached a goal and, when the goal names
    a node, visited it."""
    period = Period(workflow_id)
    converted = goal_hit()
    if goal_node_key is not None:
        visited = select(S.execution_id).where(
            S.workflow_id == workflow_id, S.node_id == goal_node_key
        )
        converted = and_(converted, E.id.in_(visited))
    stmt = select(func.count(), func.sum(case((converted, 1), else_=0))).where(
        *period.execution_filter()
    )
    total, conversions = db.session.execute(stmt).one()
    return _int(total), _int(conversions)


__all__ = [
    "Period",
    "completion_histogram",
    "completion_times",
    "email_counts",
    "execution_totals",
    "goal_conversions",
    "node_stats",
    "stop_counts",
    "transition_counts",
    "variant_counts",
    "visit_counts",
    "waiting_counts",
]
