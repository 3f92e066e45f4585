"""SQL aggregates over executions (flow states, outbox and tracking: flow_queries).

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

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, or_, select

from app.clock import ensure_utc, now
from app.extensions import db
from app.models import ContactFlowState, Workflow, WorkflowExecution
from app.models.execution import ACTIVE_STATUSES
from app.tenancy import firm_context

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
        self._whole: bool | None = None
        self._test_ids: list[int] | None = None

    def prepare(self) -> Period:
        """Look up, once, what the period's selects depend on (whole
        history or not, the test runs), so they can be built in any thread."""
        self.whole  # noqa: B018 - the property caches its answer
        self.test_run_ids()
        return self

    def execution_filter(self) -> list:
        conditions = [E.workflow_id == self.workflow_id, E.test_mode.is_(False)]
        if self.lo is not None:
            conditions.append(E.started_at >= self.lo)
        if self.hi is not None:
            conditions.append(E.started_at < self.hi)
        return conditions

    def execution_ids(self):
        return select(E.id).where(*self.execution_filter())

    def test_run_ids(self) -> list[int]:
        """The workflow's test runs (few; found by a partial index)."""
        if self._test_ids is None:
            stmt = select(E.id).where(E.workflow_id == self.workflow_id, E.test_mode)
            self._test_ids = list(db.session.scalars(stmt))
        return self._test_ids

    @property
    def whole(self) -> bool:
        """True when every (non-test) execution of the workflow started in the
        period: flow states, messages and events then need no join to
        executions to be selected, only the workflow id (and the exclusion
        of test runs). Looked up once, cheaply, on (workflow_id, started_at)."""
        if self._whole is None:
            if self.lo is None and self.hi is None:
                self._whole = True
            else:
                first, last = db.session.execute(
                    select(func.min(E.started_at), func.max(E.started_at)).where(
                        E.workflow_id == self.workflow_id, E.test_mode.is_(False)
                    )
                ).one()
                first, last = ensure_utc(first), ensure_utc(last)
                self._whole = first is None or (
                    (self.lo is None or first >= self.lo) and (self.hi is None or last < self.hi)
                )
        return self._whole

    def states(self, *columns, include_tests: bool = False):
        """A select over the period's flow states.

        For a whole history the select reads the workflow's states alone,
        test runs included (no join, no subquery: PostgreSQL can scan it in
        parallel); callers subtract :meth:`test_states` from additive counts.
        Otherwise it joins the executions started in the period."""
        stmt = select(*columns).select_from(S).where(S.workflow_id == self.workflow_id)
        if self.whole:
            return stmt
        stmt = stmt.join(E, E.id == S.execution_id).where(*self.execution_filter())
        if self.lo is not None:
            # Implied by the join (states come after their execution's start),
            # but lets the (workflow_id, entered_at) index narrow the scan.
            stmt = stmt.where(S.entered_at >= self.lo)
        return stmt

    def test_states(self, *columns):
        """The test runs' states, to subtract from a whole-history count
        (found through the execution_id index); None without test runs."""
        ids = self.test_run_ids()
        if not ids:
            return None
        return (
            select(*columns)
            .select_from(S)
            .where(S.workflow_id == self.workflow_id, S.execution_id.in_(ids))
        )

    def restrict(self, column) -> list:
        """Filters on the outbox's or tracking's execution id column for this
        period. None for a whole history: a test run's messages have status
        "test" (never counted as sent) and, never leaving, get no events."""
        if self.whole:
            return []
        conditions = [column.in_(self.execution_ids())]
        if self.lo is not None:
            # Messages and events come after their execution's start; the
            # bound lets the created_at indexes narrow the scan.
            conditions.append(column.table.c.created_at >= self.lo)
        return conditions


def each_active_workflow() -> Iterator[Workflow]:
    """Every active workflow of every firm, in id order, each loaded and
    yielded inside its own firm's context (for the periodic jobs)."""
    pairs = db.session.execute(
        select(Workflow.id, Workflow.firm_id)
        .where(Workflow.status == "active")
        .order_by(Workflow.id)
        .execution_options(all_firms=True)
    ).all()
    for workflow_id, firm_id in pairs:
        with firm_context(firm_id):
            workflow = db.session.get(Workflow, workflow_id)
            if workflow is not None:
                yield workflow


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


def dropped_out(at: datetime | None = None):
    """The part of :func:`ended_without_goal` that did not finish its way:
    failed, canceled or stuck. The rest (completed without a goal) walked
    to the end of a branch; it did not drop off."""
    overdue = (at or now()) - STUCK_AFTER
    return or_(
        E.status.in_(("failed", "canceled")),
        and_(E.status.in_(ACTIVE_STATUSES), E.wake_at < overdue),
    )


def _int(value) -> int:
    return int(value or 0)


def execution_summary(period: Period, at: datetime | None = None) -> tuple[dict, dict, dict]:
    """(totals by outcome, executions stopped short of a goal per node, the
    part of those that dropped out per node) in one pass over the period's
    executions, grouped by the node each is at.

    The node is the execution's ``current_node``; for the rare execution
    without one, the node of its last flow state."""
    done = E.status.in_(("completed", "goal_reached"))
    stopped = ended_without_goal(at)
    dropped = dropped_out(at)
    stmt = (
        select(
            E.current_node,
            func.count(),
            func.sum(case((done, 1), else_=0)),
            func.sum(case((E.status == "failed", 1), else_=0)),
            func.sum(case((and_(done, goal_hit()), 1), else_=0)),
            func.sum(case((E.status.in_(ACTIVE_STATUSES), 1), else_=0)),
            func.sum(case((E.status == "canceled", 1), else_=0)),
            func.sum(case((stopped, 1), else_=0)),
            func.sum(case((dropped, 1), else_=0)),
        )
        .where(*period.execution_filter())
        .group_by(E.current_node)
    )
    names = ("total", "completed", "failed", "goal_reached", "active", "canceled")
    totals = dict.fromkeys(names, 0)
    stops: dict[str, int] = {}
    drops: dict[str, int] = {}
    lost = 0
    for node, *counts in db.session.execute(stmt):
        for name, value in zip(names, counts, strict=False):
            totals[name] += _int(value)
        n_stopped, n_dropped = _int(counts[-2]), _int(counts[-1])
        if node is None:
            lost += n_stopped
        else:
            if n_stopped:
                stops[node] = stops.get(node, 0) + n_stopped
            if n_dropped:
                drops[node] = drops.get(node, 0) + n_dropped
    if lost:
        for into, condition in ((stops, stopped), (drops, dropped)):
            for node, n in _stops_without_current_node(period, condition).items():
                into[node] = into.get(node, 0) + n
    return totals, stops, drops


def _stops_without_current_node(period: Period, stopped) -> dict[str, int]:
    last = (
        select(func.max(S.id))
        .select_from(S)
        .join(E, E.id == S.execution_id)
        .where(*period.execution_filter(), stopped, E.current_node.is_(None))
        .group_by(S.execution_id)
    )
    stmt = select(S.node_id, func.count()).where(S.id.in_(last)).group_by(S.node_id)
    return {node: _int(n) for node, n in db.session.execute(stmt)}


def execution_totals(period: Period) -> dict[str, int]:
    return execution_summary(period)[0]


def stop_counts(
    period: Period, at: datetime | None = None, dropped_only: bool = False
) -> dict[str, int]:
    """Only the stops (the flow overlay): the ended and overdue executions
    are found through the status indexes, without reading every execution.
    ``dropped_only`` leaves out those that completed at the end of a branch
    (:func:`dropped_out`)."""
    stopped = dropped_out(at) if dropped_only else ended_without_goal(at)
    stmt = (
        select(E.current_node, func.count())
        .where(*period.execution_filter(), stopped)
        .group_by(E.current_node)
    )
    stops: dict[str, int] = {}
    lost = 0
    for node, n in db.session.execute(stmt):
        if node is None:
            lost += _int(n)
        else:
            stops[node] = _int(n)
    if lost:
        for node, n in _stops_without_current_node(period, stopped).items():
            stops[node] = stops.get(node, 0) + n
    return stops


def _completion_seconds():
    return seconds_between(E.completed_at, E.started_at)


def _completed_filter(period: Period) -> list:
    return [
        *period.execution_filter(),
        E.status.in_(("completed", "goal_reached")),
        E.completed_at.is_not(None),
    ]


def completion_summary(period: Period) -> dict[str, float | None]:
    """Average, median, shortest and longest seconds from start to end of
    executions that ended without failure, in one pass (PostgreSQL)."""
    secs = _completion_seconds()
    where = _completed_filter(period)
    if dialect() == "postgresql":
        # Aggregating the intervals and converting once is cheaper than
        # converting every row to seconds first.
        span = E.completed_at - E.started_at

        def seconds(expr):
            return cast(func.extract("epoch", expr), Float)

        average, median, low, high = db.session.execute(
            select(
                seconds(func.avg(span)),
                seconds(func.percentile_cont(0.5).within_group(span)),
                seconds(func.min(span)),
                seconds(func.max(span)),
            ).where(*where)
        ).one()
    else:
        average, low, high = db.session.execute(
            select(func.avg(secs), func.min(secs), func.max(secs)).where(*where)
        ).one()
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
    values = {"average": average, "median": median, "min": low, "max": high}
    return {name: float(v) if v is not None else None for name, v in values.items()}


def completion_times(period: Period) -> tuple[float | None, float | None]:
    """(average, median) seconds from start to end of executions that ended
    without failure."""
    summary = completion_summary(period)
    return summary["average"], summary["median"]


def completion_values(period: Period) -> list[tuple[float, int]]:
    """(seconds, how many) of the executions that ended without failure,
    one pair per distinct time (a day's, for its stored rollup)."""
    secs = _completion_seconds().label("secs")
    stmt = select(secs, func.count()).where(*_completed_filter(period)).group_by(secs)
    return [(float(seconds), int(n)) for seconds, n in db.session.execute(stmt)]


def completion_histogram(
    period: Period, buckets: int = 20, low: float | None = None, high: float | None = None
) -> list[dict[str, Any]]:
    """Completion times grouped into equal-width buckets, in the database
    (``low``/``high``: the range, when already known)."""
    secs = _completion_seconds()
    where = _completed_filter(period)
    if low is None or high is None:
        summary = completion_summary(period)
        low, high = summary["min"], summary["max"]
        if low is None or high is None:
            return []
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


def held_counts(workflow_id: int) -> dict[str, dict[str, int]]:
    """Executions held by a send gate right now, per node and gate
    (``{"mail": {"send_window": 12}}``)."""
    gate = S.action_result["gate"].as_string()
    stmt = (
        select(E.current_node, gate, func.count())
        .join(S, and_(S.execution_id == E.id, S.node_id == E.current_node))
        .where(
            E.workflow_id == workflow_id,
            E.test_mode.is_(False),
            E.status == "waiting",
            E.wait_reason == "held",
            S.action_status == "deferred",
        )
        .group_by(E.current_node, gate)
    )
    counts: dict[str, dict[str, int]] = {}
    for key, name, n in db.session.execute(stmt):
        if key is not None:
            counts.setdefault(key, {})[name or "held"] = _int(n)
    return counts


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
    "completion_summary",
    "completion_times",
    "completion_values",
    "dropped_out",
    "execution_summary",
    "execution_totals",
    "goal_conversions",
    "stop_counts",
    "waiting_counts",
]
