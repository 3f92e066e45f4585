"""The dashboard page: access, period picker, figures, cache, empty state."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.automation.analytics import run_daily_analytics
from app.extensions import db
from app.models import WorkflowAnalytics, WorkflowNode
from app.tenancy import firm_context
from tests.analytics import history
from tests.analytics.history import DAY, START
from tests.factories import make_workflow

NEXT_DAY = START + timedelta(days=1)


@pytest.fixture
def clock():
    with time_machine.travel(NEXT_DAY, tick=False) as traveller:
        yield traveller


@pytest.fixture
def workflow(acme):
    return history.build(acme)


def url(workflow, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/automation/analytics/{workflow.id}" + (f"?{query}" if query else "")


def stat(page: str, name: str) -> str:
    match = re.search(rf'id="stat-{name}">([^<]*)<', page)
    assert match, f"no stat {name}"
    return match.group(1)


def figure(page: str, name: str) -> dict:
    match = re.search(
        rf'<script type="application/json" id="fig-{name}">(.*?)</script>', page, re.S
    )
    assert match, f"no figure {name}"
    return json.loads(match.group(1))


def test_it_renders_every_figure_and_the_node_table(client, auth, alice, workflow, clock):
    auth.login(alice)
    response = client.get(url(workflow))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for name in ("executions", "goals", "sankey", "funnel", "completion", "ab"):
        assert figure(page, name)["data"], name
    assert stat(page, "total") == "11"  # the last 30 days hold all but the test run
    assert 'id="perf-email"' in page
    assert "two-proportion z-test" in page
    assert "vendor/plotly.min.js" in page and "analytics.js" in page


def test_the_figures_hold_the_numbers(client, auth, alice, workflow, clock):
    auth.login(alice)
    page = client.get(url(workflow, start=DAY.isoformat(), end=DAY.isoformat())).get_data(
        as_text=True
    )
    bars = {trace["name"]: trace["y"] for trace in figure(page, "executions")["data"]}
    assert bars["Goal reached"] == [6]
    assert bars["Completed (no goal)"] == [1]
    assert bars["Failed"] == [1]
    assert bars["In progress / canceled"] == [2]
    sankey = figure(page, "sankey")["data"][0]
    labels = sankey["node"]["label"]
    links = {
        (labels[s], labels[t]): v
        for s, t, v in zip(
            sankey["link"]["source"], sankey["link"]["target"], sankey["link"]["value"], strict=True
        )
    }
    assert links[("Trigger", "email")] == 10
    assert links[("split", "wait")] == 5
    assert links[("email", "Dropped off")] == 1
    assert links[("goal", "Goal reached")] == 6
    goals = {trace["name"]: trace["y"] for trace in figure(page, "goals")["data"]}
    assert goals["Value"] == [300.0]  # six conversions at the goal node's value of 50


def test_the_period_picker_selects_executions_by_start_date(client, auth, alice, workflow, clock):
    auth.login(alice)
    earlier = history.EARLIER.start.date().isoformat()
    page = client.get(url(workflow, start=earlier, end=earlier)).get_data(as_text=True)
    assert stat(page, "total") == "1"
    page = client.get(url(workflow, start=DAY.isoformat(), end=DAY.isoformat())).get_data(
        as_text=True
    )
    assert stat(page, "total") == "10"
    assert stat(page, "rate") == "60.0%"
    assert stat(page, "median") == "6.7 min"  # 400 s
    # One day's median is exact; several days' is interpolated, and says so.
    assert 'id="stat-median-note"' not in page
    # The last 7 days are today and the six before: the earlier execution
    # (five days before DAY) falls in them one day after DAY, not two.
    page = client.get(url(workflow, days=7)).get_data(as_text=True)
    assert stat(page, "total") == "11"
    assert 'id="stat-median-note"' in page
    clock.move_to(START + timedelta(days=2))
    page = client.get(url(workflow, days=7)).get_data(as_text=True)
    assert stat(page, "total") == "10"
    assert 'aria-current="true">Last 7 days' in page


@pytest.mark.parametrize(
    "params,field,message",
    [
        ({"start": "2026-13-01", "end": "2026-03-10"}, "start", "Enter a date as YYYY-MM-DD."),
        ({"start": "2026-03-10", "end": ""}, "end", "Required."),
        (
            {"start": "2026-03-10", "end": "2026-03-01"},
            "end",
            "The end date is before the start date.",
        ),
        ({"start": "2020-01-01", "end": "2026-03-01"}, "end", "A period is at most 366 days."),
        ({"days": "5"}, None, "Choose 7, 30 or 90 days."),
        ({"days": "abc"}, None, "Choose 7, 30 or 90 days."),
    ],
)
def test_bad_periods_are_form_errors(client, auth, alice, workflow, clock, params, field, message):
    auth.login(alice)
    response = client.get(url(workflow, **params))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    if field:
        assert f'id="{field}-error"' in page
    assert "Showing the last 30 days instead" in page


def test_closed_days_come_from_the_stored_rows(client, auth, alice, acme, workflow, clock):
    run_daily_analytics()  # stores DAY (now closed) and today
    with firm_context(acme.id):
        row = db.session.scalars(
            select(WorkflowAnalytics).where(WorkflowAnalytics.period_start == DAY)
        ).one()
        row.total_executions = 4242  # a marker only the cache can show
        db.session.commit()
    auth.login(alice)
    page = client.get(url(workflow, start=DAY.isoformat(), end=DAY.isoformat())).get_data(
        as_text=True
    )
    assert stat(page, "total") == "4242"
    assert "1 day(s) from stored daily figures, 0 computed now" in page


def test_a_day_stored_before_it_ended_is_recomputed(client, auth, alice, acme, workflow):
    with time_machine.travel(START + timedelta(hours=1), tick=False):
        run_daily_analytics()
    with firm_context(acme.id):
        row = db.session.scalars(
            select(WorkflowAnalytics).where(WorkflowAnalytics.period_start == DAY)
        ).one()
        row.total_executions = 4242
        db.session.commit()
    with time_machine.travel(NEXT_DAY, tick=False):
        auth.login(alice)
        page = client.get(url(workflow, start=DAY.isoformat(), end=DAY.isoformat())).get_data(
            as_text=True
        )
    assert stat(page, "total") == "10"


def test_a_workflow_without_executions_shows_an_empty_state(client, auth, alice, acme, clock):
    workflow = make_workflow(acme, nodes=history.NODES, edges=history.EDGES)
    auth.login(alice)
    response = client.get(url(workflow))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="analytics-empty"' in page
    assert "fig-sankey" not in page


def test_user_text_cannot_break_out_of_a_figure_block(client, auth, alice, acme, workflow, clock):
    with firm_context(acme.id):
        node = db.session.scalars(select(WorkflowNode).where(WorkflowNode.node_id == "email")).one()
        node.label = "</script><script>alert(1)</script>"
        db.session.commit()
    auth.login(alice)
    page = client.get(url(workflow)).get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert "</script><script>" not in page
    sankey = figure(page, "sankey")["data"][0]
    assert "</script><script>alert(1)</script>" in sankey["node"]["label"]


def test_every_script_is_external_or_data(client, auth, alice, workflow, clock):
    auth.login(alice)
    page = client.get(url(workflow)).get_data(as_text=True)
    for tag in re.findall(r"<script[^>]*>", page):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_another_firms_workflow_is_404(client, auth, charlie, workflow):
    auth.login(charlie)
    assert client.get(url(workflow)).status_code == 404


def test_an_unknown_workflow_is_404(client, auth, alice):
    auth.login(alice)
    assert client.get("/automation/analytics/999999").status_code == 404


def test_portal_users_are_refused(client, paula, workflow):
    # Portal accounts cannot sign in through the form; a session made for
    # one (say, by another app sharing the secret) still gets no page.
    from app.extensions import db
    from app.sessions import start_session

    start_session(paula, remember=False)
    db.session.commit()
    with client.session_transaction() as session:
        session["_user_id"] = paula.session_key
        session["_fresh"] = True
    assert client.get(url(workflow)).status_code == 403


def test_anonymous_visitors_are_sent_to_login(client, workflow):
    response = client.get(url(workflow))
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_a_goal_value_that_is_not_a_number_counts_as_zero(
    client, auth, alice, acme, workflow, clock
):
    with firm_context(acme.id):
        node = db.session.scalars(select(WorkflowNode).where(WorkflowNode.node_id == "goal")).one()
        node.configuration = {"goal_value": "lots"}
        db.session.commit()
    auth.login(alice)
    response = client.get(url(workflow))
    assert response.status_code == 200
    assert stat(response.get_data(as_text=True), "value") == "0.00"


def sankey_links_of(page: str) -> dict:
    sankey = figure(page, "sankey")["data"][0]
    labels = sankey["node"]["label"]
    return {
        (labels[s], labels[t]): v
        for s, t, v in zip(
            sankey["link"]["source"], sankey["link"]["target"], sankey["link"]["value"], strict=True
        )
    }


def test_a_completed_branch_is_not_a_drop_off(client, auth, alice, workflow, clock):
    auth.login(alice)
    page = client.get(url(workflow, start=DAY.isoformat(), end=DAY.isoformat())).get_data(
        as_text=True
    )
    links = sankey_links_of(page)
    assert links[("cond", "Completed")] == 1  # the "no" branch ends there
    assert ("cond", "Dropped off") not in links
    assert links[("email", "Dropped off")] == 1  # the failed e-mail
    assert links[("wait", "Dropped off")] == 1  # the canceled one
    row = re.search(r'<tr id="perf-cond">(.*?)</tr>', page, re.S).group(1)
    cells = re.findall(r'<td class="num[^"]*">([^<]*)<', row)
    assert cells[4:6] == ["1", "0"]  # completed here, dropped off here


def test_the_funnel_has_one_panel_per_path(client, auth, alice, workflow, clock):
    auth.login(alice)
    page = client.get(url(workflow, start=DAY.isoformat(), end=DAY.isoformat())).get_data(
        as_text=True
    )
    traces = figure(page, "funnel")["data"]
    assert [t["x"] for t in traces] == [[10, 9, 4], [10, 9, 5, 3, 2]]
    assert [t["name"] for t in traces] == ["split: variant A", "split: variant B · cond: yes"]
    assert 'id="funnel-paths"' in page and 'data-path="email split goal"' in page


def test_charts_without_data_say_so_instead_of_drawing_empty_axes(client, auth, alice, acme):
    waiting = history.Run(
        [("email", "success", None), ("split", "success", "B"), ("wait", "waiting", None)],
        "waiting",
        wake_at=START + timedelta(days=30),
    )
    workflow = history.build(acme, [waiting])
    auth.login(alice)
    with time_machine.travel(NEXT_DAY, tick=False):
        page = client.get(url(workflow, start=DAY.isoformat(), end=DAY.isoformat())).get_data(
            as_text=True
        )
    for name in ("executions", "sankey", "funnel", "cohorts"):
        figure(page, name)
    for name in ("goals", "completion"):
        assert f'id="fig-{name}"' not in page
        assert f'id="no-data-{name}"' in page
    assert "No data yet" in page


def test_the_cohort_table_holds_the_database_numbers(client, auth, alice, workflow, clock):
    auth.login(alice)
    page = client.get(url(workflow, days=30)).get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-week="([\d-]+)">(.*?)</tr>', page, re.S))
    assert list(rows) == ["2026-03-02", "2026-03-09"]
    cells = re.findall(r'<td class="num">([^<]*)<', rows["2026-03-09"])
    assert cells == ["10", "6", "60.0%", "7", "1", "1"]
