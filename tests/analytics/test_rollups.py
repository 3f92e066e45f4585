"""The dashboard's figures from stored daily rows (closed days) are the
figures a raw query over the same period gives, on both backends: what
lets retention drop flow states under a dashboard that keeps its history."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from app.automation.analytics import AnalyticsCalculator, run_daily_analytics
from app.automation.analytics.dashboard import ADDITIVE, summarize
from app.tenancy import firm_context
from tests.analytics import history
from tests.analytics.history import DAY, START

EMAIL = ("sent", "opened", "clicked", "unsubscribed", "bounced", "open_rate", "click_rate")


def test_rollups_for_closed_days_give_the_raw_numbers(acme):
    workflow = history.build(acme)
    start, end = DAY - timedelta(days=6), DAY
    with time_machine.travel(START + timedelta(days=1), tick=False):
        run_daily_analytics()  # DAY and the earlier day, both closed now
        with firm_context(acme.id):
            summary = summarize(workflow, start, end)
            raw = AnalyticsCalculator.compute(workflow, start, end)
    assert (summary.cached_days, summary.live_days) == (2, 0)
    assert summary.total == raw["total_executions"] == 11
    assert summary.completed == raw["completed_executions"]
    assert summary.failed == raw["failed_executions"]
    assert summary.goal_reached == raw["goal_reached_executions"]
    assert summary.avg_seconds == raw["avg_completion_time_seconds"]
    assert summary.median_seconds == raw["median_completion_time_seconds"]
    rolled, counted = summary.node_performance, raw["node_performance"]
    assert set(rolled) == set(counted)
    for key, entry in counted.items():
        for name in (*ADDITIVE, "transitions", "avg_time_seconds"):
            assert rolled[key][name] == entry[name], (key, name)
        assert rolled[key]["time_spent_seconds"] == entry["time_spent_seconds"]
        if "email" in entry:
            assert {n: rolled[key]["email"][n] for n in EMAIL} == {
                n: entry["email"][n] for n in EMAIL
            }, key
        if "variants" in entry:
            assert rolled[key]["variants"] == entry["variants"], key
    assert summary.drop_off_points == raw["drop_off_points"]
