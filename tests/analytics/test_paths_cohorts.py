"""The per-path funnel and the entry-week cohorts, on the known history
(tests/analytics/history.py), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import time_machine

from app.automation.analytics.cohorts import cohorts
from app.automation.analytics.paths import graph_paths, path_funnels
from app.automation.analytics.queries import Period
from app.automation.graph.definition import definition_of
from app.tenancy import firm_context
from tests.analytics import history
from tests.analytics.history import DAY, START


@pytest.fixture
def workflow(acme):
    return history.build(acme)


def funnels(firm, workflow, start=DAY, end=DAY, at=START + timedelta(hours=2)):
    with time_machine.travel(at, tick=False), firm_context(firm.id):
        return {
            funnel.label: funnel
            for funnel in path_funnels(definition_of(workflow), Period(workflow.id, start, end))
        }


def stages(funnel) -> dict:
    return {stage.node_id: stage for stage in funnel.stages}


def test_every_way_through_the_graph_is_a_path(acme, workflow):
    with firm_context(acme.id):
        paths = graph_paths(definition_of(workflow))
    assert [p.steps for p in paths] == [
        ["email", "split", "goal"],
        ["email", "split", "wait", "cond", "goal"],
    ]
    assert [p.label for p in paths] == ["split: variant A", "split: variant B · cond: yes"]


def test_parallel_branches_are_separate_funnels(acme, workflow):
    found = funnels(acme, workflow)
    a = found["split: variant A"]
    b = found["split: variant B · cond: yes"]
    assert [s.entered for s in a.stages] == [10, 9, 4]
    assert [s.entered for s in b.stages] == [10, 9, 5, 3, 2]
    # The two arms of the split add up to the split, never follow each other.
    assert a.stages[2].entered + b.stages[2].entered == a.stages[1].entered


def test_each_stage_tells_completed_from_dropped(acme, workflow):
    b = stages(funnels(acme, workflow)["split: variant B · cond: yes"])
    assert (b["email"].dropped, b["email"].finished) == (1, 0)  # the failed e-mail
    assert (b["wait"].dropped, b["wait"].active) == (1, 1)  # canceled; still waiting
    assert (b["cond"].finished, b["cond"].dropped) == (1, 0)  # "no" ends the branch
    assert b["goal"].goal == 2


def test_a_wait_overdue_by_a_day_counts_as_dropped(acme, workflow):
    later = START + timedelta(days=32)
    b = stages(funnels(acme, workflow, at=later)["split: variant B · cond: yes"])
    assert (b["wait"].dropped, b["wait"].active) == (2, 0)


def test_test_runs_and_other_periods_do_not_count(acme, workflow):
    earlier = history.EARLIER.start.date()
    found = funnels(acme, workflow, earlier, earlier)
    assert list(found) == ["split: variant A"]  # nobody took B then
    assert [s.entered for s in found["split: variant A"].stages] == [1, 1, 1]


def test_cohorts_group_executions_by_entry_week(acme, workflow):
    period = Period(workflow.id, DAY - timedelta(days=30), DAY)
    with time_machine.travel(START + timedelta(days=15), tick=False), firm_context(acme.id):
        found = {c.week: c for c in cohorts(period)}
        assert list(found) == [date(2026, 3, 2), date(2026, 3, 9)]  # Mondays
        earlier, main = found[date(2026, 3, 2)], found[date(2026, 3, 9)]
        assert (earlier.entered, earlier.goal, earlier.completed) == (1, 1, 1)
        assert (main.entered, main.goal, main.completed, main.failed) == (10, 6, 7, 1)
        assert main.active == 1
        assert main.rate == pytest.approx(60.0)
        # Every goal of the history was reached within minutes of entry.
        assert main.cumulative_rates() == [60.0, 60.0, 60.0]
        assert len(earlier.cumulative_rates()) == 4


def test_a_goal_reached_weeks_later_counts_in_its_week_of_age(acme):
    late = history.Run(history.A_PATH, "goal_reached", 100, goal=True)
    never = history.Run(history.A_PATH[:2], "completed", 100)
    workflow = history.build(acme, [late, never])
    with firm_context(acme.id):
        from sqlalchemy import update

        from app.extensions import db
        from app.models import ContactFlowState

        db.session.execute(
            update(ContactFlowState)
            .where(ContactFlowState.node_id == "goal")
            .values(entered_at=START + timedelta(days=9))
        )
        db.session.commit()
    period = Period(workflow.id, DAY, DAY)
    with time_machine.travel(START + timedelta(days=22), tick=False), firm_context(acme.id):
        (cohort,) = cohorts(period)
        assert cohort.converted_in_week == {1: 1}
        assert cohort.cumulative_rates() == [0.0, 50.0, 50.0, 50.0]


def test_an_empty_period_has_no_cohorts_and_no_funnels(acme, workflow):
    later = DAY + timedelta(days=3)
    assert funnels(acme, workflow, later, later) == {}
    with firm_context(acme.id):
        assert cohorts(Period(workflow.id, later, later)) == []
