"""calculate_workflow_analytics, the flow overlays and goals, on a known history."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from sqlalchemy import func, select

from app.automation.analytics import AnalyticsCalculator, node_live_counts, run_daily_analytics
from app.automation.analytics import goals as analytics_goals
from app.extensions import db
from app.models import WorkflowAnalytics, WorkflowExecution, WorkflowGoal
from app.tenancy import firm_context
from tests.analytics import history
from tests.analytics.history import DAY, START


@pytest.fixture
def workflow(acme):
    return history.build(acme)


def calc(firm, workflow, start=DAY, end=DAY, at=START + timedelta(hours=2)):
    """Computed as of ``at`` (the history's waits are then not overdue)."""
    with time_machine.travel(at, tick=False), firm_context(firm.id):
        return AnalyticsCalculator.calculate_workflow_analytics(workflow, start, end)


def test_it_counts_executions_by_outcome(acme, workflow):
    row = calc(acme, workflow)
    assert row.total_executions == 10
    assert row.completed_executions == 7  # completed or goal_reached
    assert row.goal_reached_executions == 6
    assert row.failed_executions == 1
    assert row.goal_conversion_rate == pytest.approx(60.0)


def test_it_computes_average_and_median_completion_time(acme, workflow):
    row = calc(acme, workflow)
    assert row.avg_completion_time_seconds == pytest.approx(3100 / 7)
    assert row.median_completion_time_seconds == pytest.approx(400)


def test_the_median_of_an_even_count_is_the_mean_of_the_middle_two(acme):
    runs = [
        history.Run(history.A_PATH, "goal_reached", secs, goal=True) for secs in (30, 10, 40, 20)
    ]
    workflow = history.build(acme, runs)
    row = calc(acme, workflow)
    assert row.median_completion_time_seconds == pytest.approx(25)
    assert row.avg_completion_time_seconds == pytest.approx(25)


def test_it_reports_node_performance(acme, workflow):
    perf = calc(acme, workflow).node_performance
    assert perf["email"]["visits"] == 10
    assert perf["email"]["successes"] == 9
    assert perf["email"]["failures"] == 1
    assert perf["email"]["avg_time_seconds"] == pytest.approx(10)
    assert perf["split"]["visits"] == 9
    assert perf["wait"]["visits"] == 5
    assert perf["cond"]["visits"] == 3
    assert perf["goal"]["visits"] == 6
    assert perf["split"]["transitions"] == {"goal": 4, "wait": 5}
    # Two are still inside "wait" (no exit time): the average is over exits.
    assert perf["wait"]["timed"] == 3


def test_it_reports_email_engagement_per_node(acme, workflow):
    email = calc(acme, workflow).node_performance["email"]["email"]
    assert email["sent"] == 9  # sent or recorded; the failed one is not
    assert email["opened"] == 3  # unique per execution
    assert email["clicked"] == 1
    assert email["unsubscribed"] == 1
    assert email["bounced"] == 1
    assert email["open_rate"] == pytest.approx(300 / 9, rel=1e-3)


def test_it_finds_drop_off_points(acme, workflow):
    points = {p["node_id"]: p for p in calc(acme, workflow).drop_off_points}
    # failed at email, completed without goal at cond, canceled at wait;
    # the one still waiting (wake-up in the future) has not dropped off.
    assert points["email"]["stopped"] == 1
    assert points["cond"]["stopped"] == 1
    assert points["wait"]["stopped"] == 1
    assert points["goal"]["stopped"] == 0
    assert points["email"]["entered"] == 10
    assert points["email"]["exited_onward"] == 9
    assert points["cond"]["share"] == pytest.approx(100 / 3, rel=1e-3)
    assert points["wait"]["share_of_executions"] == pytest.approx(10)


def test_a_long_overdue_active_execution_counts_as_stuck(acme):
    runs = [
        history.Run(
            [("email", "success", None), ("split", "success", "B"), ("wait", "waiting", None)],
            "waiting",
            wake_at=START + timedelta(hours=1),
        )
    ]
    workflow = history.build(acme, runs)
    points = {
        p["node_id"]: p for p in calc(acme, workflow, at=START + timedelta(days=3)).drop_off_points
    }
    assert points["wait"]["stopped"] == 1


def test_it_stores_one_row_per_period_and_updates_it(acme, workflow):
    first = calc(acme, workflow)
    second = calc(acme, workflow)
    assert first.id == second.id
    with firm_context(acme.id):
        assert db.session.scalar(select(func.count()).select_from(WorkflowAnalytics)) == 1


def test_the_period_is_the_start_date_of_executions(acme, workflow):
    earlier = history.EARLIER.start.date()
    assert calc(acme, workflow, earlier, earlier).total_executions == 1
    assert calc(acme, workflow, earlier, DAY).total_executions == 11
    assert (
        calc(acme, workflow, DAY + timedelta(days=1), DAY + timedelta(days=2)).total_executions == 0
    )


def test_an_empty_period_has_zero_rates_and_no_times(acme, workflow):
    row = calc(acme, workflow, DAY + timedelta(days=1), DAY + timedelta(days=1))
    assert row.goal_conversion_rate == 0.0
    assert row.avg_completion_time_seconds is None
    assert row.median_completion_time_seconds is None
    assert row.drop_off_points == []


def test_the_flow_visualization_has_the_seed_shape(acme, workflow):
    with time_machine.travel(START + timedelta(hours=2), tick=False), firm_context(acme.id):
        data = AnalyticsCalculator.get_flow_visualization_data(workflow)
    nodes = {n["id"]: n for n in data["nodes"]}
    edges = {(e["source"], e["target"]): e["transitions"] for e in data["edges"]}
    assert set(nodes["email"]) == {"id", "visits", "drop_off"}
    # All time: the ten of DAY and the earlier one; never the test run.
    assert nodes["email"]["visits"] == 11
    assert nodes["goal"]["visits"] == 7
    assert nodes["email"]["drop_off"] == 1
    assert nodes["wait"]["drop_off"] == 1
    assert edges == {
        ("email", "split"): 10,
        ("split", "goal"): 5,
        ("split", "wait"): 5,
        ("wait", "cond"): 3,
        ("cond", "goal"): 2,
    }


def test_the_execution_flow_visualization_shows_its_path(acme, workflow):
    with firm_context(acme.id):
        canceled = db.session.scalars(
            select(WorkflowExecution).where(WorkflowExecution.status == "canceled")
        ).one()
        data = AnalyticsCalculator.get_execution_flow_visualization(canceled)
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes["email"]["visits"] == 1
    assert nodes["goal"]["visits"] == 0
    assert nodes["wait"]["drop_off"] == 1
    edges = {(e["source"], e["target"]): e["transitions"] for e in data["edges"]}
    assert edges[("split", "wait")] == 1
    assert edges[("split", "goal")] == 0


def test_live_counts_show_who_waits_where(acme, workflow):
    with firm_context(acme.id):
        counts = node_live_counts(workflow)
    assert counts["wait"] == {"waiting": 1, "visits": 5, "held": 0, "held_text": ""}
    assert counts["email"] == {"waiting": 0, "visits": 11, "held": 0, "held_text": ""}


def test_another_firms_history_is_invisible(acme, globex, workflow):
    with firm_context(globex.id):
        row = AnalyticsCalculator.calculate_workflow_analytics(workflow, DAY, DAY)
        assert row.total_executions == 0
        assert row.node_performance == {}


def test_goal_analytics_count_conversions_rate_and_value(acme, workflow):
    with firm_context(acme.id):
        goal = WorkflowGoal(
            workflow_id=workflow.id,
            name="Bought",
            goal_node_id=workflow.node_by_key("goal").id,
            goal_value=Decimal("50.00"),
        )
        db.session.add(goal)
        db.session.commit()
        analytics_goals.update_goal_analytics(goal)
        assert goal.total_conversions == 7
        assert goal.conversion_rate == pytest.approx(700 / 11)
        assert goal.total_value == Decimal("350.00")


def test_daily_analytics_store_yesterday_and_today_once(acme, workflow):
    with time_machine.travel(START + timedelta(days=1), tick=False):
        assert run_daily_analytics() == 1
        assert run_daily_analytics() == 1
    with firm_context(acme.id):
        rows = db.session.scalars(
            select(WorkflowAnalytics).order_by(WorkflowAnalytics.period_start)
        ).all()
    earlier = history.EARLIER.start.date()
    assert [(r.period_start, r.period_end) for r in rows] == [
        (earlier, earlier),  # filled in: it had executions and no row
        (DAY, DAY),
        (DAY + timedelta(days=1), DAY + timedelta(days=1)),
    ]
    assert rows[1].total_executions == 10


def test_the_cli_runs_daily_analytics(runner, acme, workflow):
    result = runner.invoke(args=["run-daily-analytics"])
    assert result.exit_code == 0, result.output
    assert "1 workflow" in result.output


def test_it_counts_entries_and_conversions_per_variant(acme, workflow):
    from app.automation.analytics.ab_testing import analyse_splits

    perf = calc(acme, workflow).node_performance
    assert perf["split"]["variants"] == {
        "A": {"entered": 4, "conversions": 4},
        "B": {"entered": 5, "conversions": 2},
    }
    (result,) = analyse_splits(perf)
    assert result.best == "A"
    assert [v.rate for v in result.variants] == [100.0, 40.0]


def test_a_period_holding_the_whole_history_gives_the_same_answers(acme, workflow):
    # The whole history takes the no-join path (test runs subtracted).
    row = calc(acme, workflow, history.EARLIER.start.date(), DAY)
    perf = row.node_performance
    assert row.total_executions == 11
    assert perf["email"]["visits"] == 11
    assert perf["email"]["successes"] == 10
    assert perf["email"]["avg_time_seconds"] == pytest.approx(10)
    assert perf["goal"]["visits"] == 7
    assert perf["split"]["variants"] == {
        "A": {"entered": 5, "conversions": 5},
        "B": {"entered": 5, "conversions": 2},
    }
    assert perf["email"]["email"]["sent"] == 10


def test_an_execution_without_a_current_node_stops_at_its_last_step(acme, workflow):
    with firm_context(acme.id):
        failed = db.session.scalars(
            select(WorkflowExecution).where(WorkflowExecution.status == "failed")
        ).one()
        failed.current_node = None
        db.session.commit()
    points = {p["node_id"]: p for p in calc(acme, workflow).drop_off_points}
    assert points["email"]["stopped"] == 1


def test_daily_analytics_fill_in_missing_older_days_once(acme, workflow):
    later = START + timedelta(days=3)
    with time_machine.travel(later, tick=False):
        run_daily_analytics()
    with firm_context(acme.id):
        days = db.session.scalars(
            select(WorkflowAnalytics.period_start).order_by(WorkflowAnalytics.period_start)
        ).all()
    # The two days with executions, then yesterday and today.
    assert days == [
        history.EARLIER.start.date(),
        DAY,
        DAY + timedelta(days=2),
        DAY + timedelta(days=3),
    ]
    with time_machine.travel(later + timedelta(hours=1), tick=False):
        run_daily_analytics()
    with firm_context(acme.id):
        assert db.session.scalar(select(func.count()).select_from(WorkflowAnalytics)) == 4
