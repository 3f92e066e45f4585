"""Cohorts by entry week: how each week's entrants fared, and how soon.

A cohort is the executions that started in one week (Monday to Sunday,
UTC) of the period. Its row holds the outcome counts and, for every week
since entry, the share of its entrants that had reached a goal by then
(cumulative), so weeks can be compared at the same age. Two GROUP BYs: one
over the executions by week, one over the first goal visit of each
converted execution by (week, weeks since entry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Date, Float, Integer, and_, case, cast, func, select

from app.automation.analytics.calculator import percent
from app.automation.analytics.queries import (
    E,
    Period,
    S,
    _int,
    dialect,
    goal_hit,
    seconds_between,
)
from app.automation.nodes.registry import keys_where
from app.clock import now
from app.extensions import db
from app.models.execution import ACTIVE_STATUSES

WEEK_SECONDS = 7 * 86400


@dataclass
class Cohort:
    week: date
    entered: int = 0
    goal: int = 0
    completed: int = 0
    failed: int = 0
    active: int = 0
    # Goal conversions in week n after entry (not cumulative).
    converted_in_week: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return percent(self.goal, self.entered)

    @property
    def age_weeks(self) -> int:
        """Whole weeks this cohort has been observable (0 in its own week)."""
        return max(0, (now().date() - self.week).days // 7)

    def as_dict(self) -> dict:
        """As a stored daily row keeps it (``breakdowns``)."""
        return {
            "week": self.week.isoformat(),
            "entered": self.entered,
            "goal": self.goal,
            "completed": self.completed,
            "failed": self.failed,
            "active": self.active,
            "converted_in_week": {str(k): n for k, n in self.converted_in_week.items()},
        }

    def cumulative_rates(self) -> list[float]:
        """Share of entrants converted by the end of week 0, 1, ... of age."""
        rates, total = [], 0
        for week in range(self.age_weeks + 1):
            total += self.converted_in_week.get(week, 0)
            rates.append(percent(total, self.entered))
        return rates


def _week_of(column):
    """The Monday (UTC) of a timestamp's week, as a SQL expression."""
    if dialect() == "postgresql":
        return cast(func.date_trunc("week", func.timezone("UTC", column)), Date)
    return func.date(column, "weekday 0", "-6 days")


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _whole_weeks(seconds):
    if dialect() == "postgresql":
        return cast(func.floor(seconds / WEEK_SECONDS), Integer)
    # Non-negative, so truncation is the floor.
    return cast(seconds / WEEK_SECONDS, Integer)


def cohorts(period: Period) -> list[Cohort]:
    """The period's cohorts, oldest first."""
    week = _week_of(E.started_at).label("week")
    done = E.status.in_(("completed", "goal_reached"))
    stmt = (
        select(
            week,
            func.count(),
            func.sum(case((goal_hit(), 1), else_=0)),
            func.sum(case((done, 1), else_=0)),
            func.sum(case((E.status == "failed", 1), else_=0)),
            func.sum(case((E.status.in_(ACTIVE_STATUSES), 1), else_=0)),
        )
        .where(*period.execution_filter())
        .group_by(week)
    )
    found: dict[date, Cohort] = {}
    for monday, entered, goal, completed, failed, active in db.session.execute(stmt):
        day = _as_date(monday)
        found[day] = Cohort(day, _int(entered), _int(goal), _int(completed), _int(failed))
        found[day].active = _int(active)
    if any(cohort.goal for cohort in found.values()):
        _add_conversion_weeks(period, found)
    return [found[day] for day in sorted(found)]


def merge_cohorts(stored: list[dict]) -> list[Cohort]:
    """Cohorts from stored days' (:meth:`Cohort.as_dict`), summed by week:
    the counts of a week are those of its days, so this is what
    :func:`cohorts` gives over the same days' raw rows."""
    found: dict[date, Cohort] = {}
    for entry in stored:
        day = _as_date(entry["week"])
        cohort = found.setdefault(day, Cohort(day))
        for name in ("entered", "goal", "completed", "failed", "active"):
            setattr(cohort, name, getattr(cohort, name) + int(entry.get(name, 0)))
        for weeks, n in (entry.get("converted_in_week") or {}).items():
            slot = int(weeks)
            cohort.converted_in_week[slot] = cohort.converted_in_week.get(slot, 0) + int(n)
    return [found[day] for day in sorted(found)]


def _add_conversion_weeks(period: Period, found: dict[date, Cohort]) -> None:
    visits = [S.workflow_id == period.workflow_id, S.node_type.in_(keys_where("converts"))]
    if period.lo is not None:
        # A state comes after its execution's start: the period's
        # executions' goal visits are all past its start (a day's, stored
        # daily, then reads that day's states, not the whole history's).
        visits.append(S.entered_at >= period.lo)
    first_goal = (
        select(S.execution_id.label("execution_id"), func.min(S.entered_at).label("at"))
        .where(*visits)
        .group_by(S.execution_id)
        .subquery()
    )
    week = _week_of(E.started_at).label("week")
    age = _whole_weeks(cast(seconds_between(first_goal.c.at, E.started_at), Float)).label("age")
    stmt = (
        select(week, age, func.count())
        .select_from(E)
        .join(first_goal, and_(first_goal.c.execution_id == E.id))
        .where(*period.execution_filter(), goal_hit())
        .group_by(week, age)
    )
    for monday, weeks, n in db.session.execute(stmt):
        cohort = found.get(_as_date(monday))
        if cohort is not None:
            slot = max(0, _int(weeks))
            cohort.converted_in_week[slot] = cohort.converted_in_week.get(slot, 0) + _int(n)
