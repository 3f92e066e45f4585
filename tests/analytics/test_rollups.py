"""The dashboard's figures from stored daily rows (closed days) are the
figures a raw query over the same period gives, on both backends: what
lets retention drop flow states under a dashboard that keeps its history."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from app.automation.analytics import AnalyticsCalculator, completion, run_daily_analytics
from app.automation.analytics import queries as q
from app.automation.analytics.cohorts import cohorts
from app.automation.analytics.dashboard import ADDITIVE, summarize
from app.automation.analytics.paths import path_funnels
from app.automation.analytics.report import dashboard_report
from app.automation.graph.definition import definition_of
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
    assert summary.avg_seconds == pytest.approx(raw["avg_completion_time_seconds"], rel=1e-12)
    # Two days hold completions: the median is the buckets' interpolation
    # (app/automation/analytics/completion.py), within a bucket of the
    # exact one, and what the raw rows' buckets give.
    with firm_context(acme.id):
        from_raw = completion.rollup(q.completion_values(q.Period(workflow.id, start, end)))
        exact = q.completion_summary(q.Period(workflow.id, start, end))
    assert summary.median_seconds == pytest.approx(completion.median(from_raw), rel=1e-12)
    assert summary.median_seconds == pytest.approx(raw["median_completion_time_seconds"], rel=0.044)
    assert summary.histogram == completion.histogram(from_raw)
    assert sum(bar["count"] for bar in summary.histogram) == 8
    assert summary.histogram[0]["start"] == exact["min"]
    assert summary.histogram[-1]["end"] == exact["max"]
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


# Completion times from under a second to days, on ten days, some days
# with one completion and some with many (bucket edges included: 60 s is
# the first bucket past the 1-second ones).
SPREAD = [0.5, 7, 59.9, 60, 61, 95, 240, 1000, 3600, 5400, 86400, 3 * 86400 + 17]


def _spread_runs():
    runs = []
    for day in range(10):
        start = START - timedelta(days=day)
        picks = SPREAD if day % 3 == 0 else SPREAD[day % len(SPREAD) :][:2]
        for n, seconds in enumerate(picks):
            status = "completed" if n % 4 == 3 else "goal_reached"
            runs.append(
                history.Run(
                    history.A_PATH,
                    status,
                    seconds * (1 + day / 100),
                    start=start + timedelta(minutes=n),
                    goal=status == "goal_reached",
                )
            )
    runs.append(history.Run([("email", "failed", None)], "failed", 30, start=START))
    return runs


def test_completion_times_from_rollups_are_the_raw_rows_buckets(acme):
    workflow = history.build(acme, runs=_spread_runs())
    start, end = DAY - timedelta(days=9), DAY
    with time_machine.travel(START + timedelta(days=1), tick=False):
        run_daily_analytics()  # every day of the period stored, closed
        with firm_context(acme.id):
            summary = summarize(workflow, start, end)
            period = q.Period(workflow.id, start, end)
            exact = q.completion_summary(period)
            from_raw = completion.rollup(q.completion_values(period))
            one_day = summarize(workflow, DAY - timedelta(days=3), DAY - timedelta(days=3))
            one_day_exact = q.completion_summary(
                q.Period(workflow.id, DAY - timedelta(days=3), DAY - timedelta(days=3))
            )
    assert (summary.cached_days, summary.live_days) == (10, 0)
    count = sum(bar["count"] for bar in summary.histogram)
    assert count == from_raw["count"] == 4 * len(SPREAD) + 6 * 2
    # Exact: the average, shortest and longest.
    assert summary.avg_seconds == pytest.approx(exact["average"], rel=1e-9)
    assert summary.histogram[0]["start"] == pytest.approx(exact["min"])
    assert summary.histogram[-1]["end"] == pytest.approx(exact["max"])
    # The median: the same interpolation as over the raw rows' buckets,
    # and within one bucket (4.4 %) of the exact one.
    assert summary.median_seconds == pytest.approx(completion.median(from_raw), rel=1e-12)
    assert summary.median_seconds == pytest.approx(exact["median"], rel=0.044)
    assert summary.histogram == [
        {**bar, "start": pytest.approx(bar["start"]), "end": pytest.approx(bar["end"])}
        for bar in completion.histogram(from_raw)
    ]
    # One day's own median is exact.
    assert one_day.cached_days == 1
    assert one_day.median_seconds == pytest.approx(one_day_exact["median"], rel=1e-12)


def test_a_bucket_holds_the_times_between_its_edges():
    for index in (0, 1, 59, 60, 61, 100, 300):
        low, high = completion.bucket_start(index), completion.bucket_start(index + 1)
        assert completion.bucket_of(low) == index
        assert completion.bucket_of((low + high) / 2) == index
        assert completion.bucket_of(high) == index + 1
        assert high - low == 1 if index < 60 else high / low == pytest.approx(2 ** (1 / 16))
    assert completion.bucket_of(59.99) == 59
    assert completion.bucket_of(60) == 60


@pytest.mark.parametrize("spread", [False, True], ids=["one-week", "two-weeks"])
def test_funnels_and_cohorts_from_rollups_are_the_raw_ones(acme, spread):
    workflow = history.build(acme, runs=_spread_runs() if spread else None)
    start, end = DAY - timedelta(days=9), DAY
    with time_machine.travel(START + timedelta(days=1), tick=False):
        run_daily_analytics()
        with firm_context(acme.id):
            report = dashboard_report(workflow, start, end)
            period = q.Period(workflow.id, start, end)
            definition = definition_of(workflow)
            raw_funnels = path_funnels(definition, period)
            raw_cohorts = cohorts(period)
    assert report.summary.live_days == 0
    assert raw_funnels and raw_cohorts
    assert report.funnels == raw_funnels
    assert report.cohorts == raw_cohorts
    assert len(raw_cohorts) == (3 if spread else 2)
    assert sum(c.entered for c in report.cohorts) == report.summary.total
    assert sum(sum(c.converted_in_week.values()) for c in report.cohorts) == sum(
        c.goal for c in raw_cohorts
    )
