"""What the dashboard shows for a period, built from cached daily rows.

A closed day (one whose stored row was computed after the day ended) is
read from ``workflow_analytics``; an open or missing day is computed and
stored on the way (today is therefore always live). Days on which no
execution started are skipped without a query each. Counts in
``node_performance`` are additive, so the period's figures are sums of the
days; averages are recomputed from the summed totals. Completion times are kept
per day in fixed buckets and merged (app/automation/analytics/
completion.py): the average, shortest and longest are exact, the median
is interpolated inside its bucket unless one day holds every completion
(then it is that day's exact one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, cast, func, select

from app.automation.analytics import completion
from app.automation.analytics import queries as q
from app.automation.analytics.ab_testing import SplitResult, analyse_splits
from app.automation.analytics.calculator import (
    AnalyticsCalculator,
    drop_off_point,
    email_block,
    percent,
)
from app.automation.analytics.cohorts import Cohort, merge_cohorts
from app.automation.analytics.paths import merge_outcomes
from app.automation.graph.definition import Graph, definition_of
from app.automation.nodes.registry import has_flag
from app.automation.operations.retention import retention_cutoff
from app.clock import now
from app.extensions import db, reads_analytics
from app.models import Workflow, WorkflowAnalytics, WorkflowExecution, WorkflowGoal

ADDITIVE = (
    "visits",
    "successes",
    "failures",
    "skipped",
    "exited",
    "timed",
    "stopped",
    "dropped",
)
EMAIL_COUNTS = ("sent", "opened", "clicked", "unsubscribed", "bounced")


@dataclass
class DayFigures:
    day: date
    total: int = 0
    completed: int = 0
    goal_reached: int = 0
    failed: int = 0
    goal_value: float = 0.0

    @property
    def other(self) -> int:
        """In progress or canceled."""
        return self.total - self.completed - self.failed


@dataclass
class Summary:
    workflow_id: int
    start: date
    end: date
    days: list[DayFigures]
    total: int = 0
    completed: int = 0
    goal_reached: int = 0
    failed: int = 0
    conversion_rate: float = 0.0
    avg_seconds: float | None = None
    median_seconds: float | None = None
    # True when the median is interpolated from several days' buckets.
    median_approximate: bool = False
    histogram: list[dict] = field(default_factory=list)
    node_performance: dict[str, dict] = field(default_factory=dict)
    drop_off_points: list[dict] = field(default_factory=list)
    splits: list[SplitResult] = field(default_factory=list)
    # Summed from the stored days: (path, outcome, executions) for the
    # funnels, the entry-week cohorts.
    path_outcomes: list[tuple] = field(default_factory=list)
    cohorts: list[Cohort] = field(default_factory=list)
    goal_value: float = 0.0
    live_days: int = 0
    cached_days: int = 0

    @property
    def empty(self) -> bool:
        return self.total == 0


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _started_days(workflow: Workflow, start: date, end: date) -> set[date]:
    """The days in [start, end] on which at least one execution started."""
    E = WorkflowExecution
    if q.dialect() == "postgresql":
        day = cast(func.timezone("UTC", E.started_at), Date)
    else:
        day = func.date(E.started_at)
    stmt = select(day).where(*q.Period(workflow.id, start, end).execution_filter()).group_by(day)
    result = set()
    for (value,) in db.session.execute(stmt):
        result.add(value if isinstance(value, date) else date.fromisoformat(str(value)))
    return result


def _current_shape(row: WorkflowAnalytics) -> bool:
    """Rows stored before ``dropped`` was counted cannot tell a completed
    branch from a drop-off, and rows stored before completion times were
    kept have none: they are computed again (once)."""
    return (
        row.completion_times is not None
        and row.breakdowns is not None
        and all("dropped" in entry for entry in (row.node_performance or {}).values())
    )


def daily_rows(workflow: Workflow, start: date, end: date) -> tuple[list[WorkflowAnalytics], int]:
    """Stored rows for closed days, fresh ones for the rest; also returns
    how many days were computed live."""
    end = min(end, now().date())
    stored = {
        row.period_start: row
        for row in db.session.scalars(
            select(WorkflowAnalytics).where(
                WorkflowAnalytics.workflow_id == workflow.id,
                WorkflowAnalytics.period_start >= start,
                WorkflowAnalytics.period_start <= end,
                WorkflowAnalytics.period_end == WorkflowAnalytics.period_start,
            )
        )
    }
    # A day whose flow states are past retention (dropped) keeps its stored
    # row whatever its shape: computing it again would find them gone.
    horizon = retention_cutoff().date()
    closed = {
        day: row
        for day, row in stored.items()
        if day < horizon
        or (row.computed_at >= _day_start(day + timedelta(days=1)) and _current_shape(row))
    }
    # Only the days without a closed row are looked up (usually just today).
    open_days = [
        start + timedelta(days=n)
        for n in range((end - start).days + 1)
        if start + timedelta(days=n) not in closed
    ]
    busy = _started_days(workflow, open_days[0], open_days[-1]) if open_days else set()
    rows, live = list(closed.values()), 0
    for day in sorted(busy - set(closed)):
        rows.append(AnalyticsCalculator.calculate_workflow_analytics(workflow, day, day))
        live += 1
    rows.sort(key=lambda row: row.period_start)
    return rows, live


def _number(value) -> float:
    """A configured value as a number; a draft's unparsable text counts 0."""
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def goal_values(workflow: Workflow) -> dict[str, float]:
    """Value of one conversion per goal node: the WorkflowGoal's value when
    one names the node, else the node's ``goal_value`` setting."""
    values = {
        node.node_id: _number((node.configuration or {}).get("goal_value"))
        for node in workflow.nodes
        if has_flag(node.node_type, "converts")
    }
    goals = db.session.scalars(select(WorkflowGoal).where(WorkflowGoal.workflow_id == workflow.id))
    for goal in goals:
        if goal.goal_node is not None:
            values[goal.goal_node.node_id] = float(goal.goal_value or Decimal(0))
    return values


def _merge(into: dict[str, dict], performance: dict[str, dict]) -> None:
    for key, entry in performance.items():
        target = into.setdefault(
            key,
            {
                "node_type": entry.get("node_type", ""),
                "label": entry.get("label", key),
                "time_spent_seconds": 0.0,
                "transitions": {},
                **{name: 0 for name in ADDITIVE},
            },
        )
        for name in ADDITIVE:
            target[name] += int(entry.get(name, 0))
        target["time_spent_seconds"] += float(entry.get("time_spent_seconds", 0.0))
        for node, n in entry.get("transitions", {}).items():
            target["transitions"][node] = target["transitions"].get(node, 0) + int(n)
        if "email" in entry:
            email = target.setdefault("email", {name: 0 for name in EMAIL_COUNTS})
            for name in EMAIL_COUNTS:
                email[name] += int(entry["email"].get(name, 0))
        for variant, counts in entry.get("variants", {}).items():
            slot = target.setdefault("variants", {}).setdefault(
                variant, {"entered": 0, "conversions": 0}
            )
            slot["entered"] += int(counts.get("entered", 0))
            slot["conversions"] += int(counts.get("conversions", 0))


@reads_analytics
def summarize(workflow: Workflow, start: date, end: date) -> Summary:
    """The dashboard's numbers for executions started in [start, end]."""
    rows, live = daily_rows(workflow, start, end)
    by_day = {row.period_start: row for row in rows}
    values = goal_values(workflow)
    summary = Summary(workflow.id, start, end, days=[], live_days=live)
    summary.cached_days = len(rows) - live
    performance: dict[str, dict] = {}
    # Graph order first, so tables and funnels follow the flow.
    for node in workflow.nodes:
        _merge(performance, {node.node_id: {"node_type": node.node_type, "label": node.label}})
    day = start
    while day <= end:
        row = by_day.get(day)
        figures = DayFigures(day)
        if row is not None:
            figures.total = row.total_executions
            figures.completed = row.completed_executions
            figures.goal_reached = row.goal_reached_executions
            figures.failed = row.failed_executions
            figures.goal_value = sum(
                values.get(key, 0.0) * int(entry.get("visits", 0))
                for key, entry in (row.node_performance or {}).items()
                if key in values
            )
            _merge(performance, row.node_performance or {})
        summary.days.append(figures)
        day += timedelta(days=1)
    summary.total = sum(d.total for d in summary.days)
    summary.completed = sum(d.completed for d in summary.days)
    summary.goal_reached = sum(d.goal_reached for d in summary.days)
    summary.failed = sum(d.failed for d in summary.days)
    summary.goal_value = sum(d.goal_value for d in summary.days)
    summary.conversion_rate = percent(summary.goal_reached, summary.total)
    for entry in performance.values():
        entry["avg_time_seconds"] = (
            entry["time_spent_seconds"] / entry["timed"] if entry["timed"] else None
        )
        if "email" in entry:
            entry["email"] = email_block(entry["email"])
    summary.node_performance = performance
    summary.drop_off_points = sorted(
        (
            drop_off_point(key, entry, summary.total)
            for key, entry in performance.items()
            if entry["visits"] or entry["stopped"]
        ),
        key=lambda point: (-point["stopped"], point["node_id"]),
    )
    summary.splits = analyse_splits(performance)
    times = completion.merge([row.completion_times or {} for row in rows])
    summary.avg_seconds = completion.average(times)
    summary.median_seconds = completion.median(times)
    summary.median_approximate = completion.is_approximate(times)
    summary.histogram = completion.histogram(times)
    breakdowns = [row.breakdowns or {} for row in rows]
    summary.path_outcomes = merge_outcomes([p for b in breakdowns for p in b.get("paths", [])])
    summary.cohorts = merge_cohorts([c for b in breakdowns for c in b.get("cohorts", [])])
    return summary


def entry_node(workflow: Workflow) -> str | None:
    return Graph(definition_of(workflow)).entry()


def sankey_links(workflow: Workflow, summary: Summary) -> list[dict[str, Any]]:
    """Links of the flow: trigger -> entry node -> ... -> goal / exits.

    Each node's visits that did not move on split into "Completed" (walked
    to the end of a branch without a goal), "Dropped off" (failed, canceled
    or stuck there), "Goal reached" (at a goal node) and "In progress"
    (still inside)."""
    links: list[dict[str, Any]] = []
    perf = summary.node_performance
    entry = entry_node(workflow)
    if entry and perf.get(entry, {}).get("visits"):
        links.append({"source": "Trigger", "target": entry, "value": perf[entry]["visits"]})
    for key, row in perf.items():
        for target, n in row.get("transitions", {}).items():
            if n:
                links.append({"source": key, "target": target, "value": n})
        dropped = min(row.get("dropped", 0), row["stopped"])
        if row["stopped"] - dropped:
            links.append({"source": key, "target": "Completed", "value": row["stopped"] - dropped})
        if dropped:
            links.append({"source": key, "target": "Dropped off", "value": dropped})
        rest = row["visits"] - row["exited"] - row["stopped"]
        if rest > 0:
            end = "Goal reached" if has_flag(row.get("node_type"), "converts") else "In progress"
            links.append({"source": key, "target": end, "value": rest})
    return links
