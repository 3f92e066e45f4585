"""The builder's forecast panel (docs/FORECAST.md): a form, the job's
progress, then the table, the chart and the canvas badges."""

from __future__ import annotations

import json
import re
import time

import time_machine
from sqlalchemy import func, select

from app.automation.analytics.forecast import run_forecast
from app.extensions import db
from app.models import WorkflowForecast
from app.tenancy import firm_context
from tests.analytics.test_forecast import END, _world
from tests.factories import make_workflow
from tests.web.conftest import HX
from tests.web.test_builder import url


def post(client, token, path, data=None):
    return client.post(path, data={"csrf_token": token, **(data or {})}, headers=HX)


def _forecasts(firm_id) -> list[WorkflowForecast]:
    db.session.expire_all()
    with firm_context(firm_id):
        rows = list(db.session.scalars(select(WorkflowForecast).order_by(WorkflowForecast.id)))
    db.session.commit()  # no read left open: SQLite's writer (the job) must not wait
    return rows


def test_the_panel_forecasts_and_shows_table_chart_and_badges(client, signed_in, alice, acme):
    workflow, _ = _world(acme)
    token = signed_in(alice)
    page = client.get(url(workflow, "")).get_data(as_text=True)
    assert f'href="/automation/workflows/{workflow.id}/forecast"' in page or "/forecast" in page
    panel = client.get(url(workflow, "/forecast"), headers=HX)
    assert panel.status_code == 200
    assert 'name="days"' in panel.get_data(as_text=True)

    started = post(client, token, url(workflow, "/forecast"), {"days": "30"})
    assert started.status_code == 200, started.get_data(as_text=True)
    body = started.get_data(as_text=True)
    assert 'role="progressbar"' in body or "forecast-table" in body
    (forecast,) = _forecasts(acme.id)
    # The job replays the days before the events' end (the clock at END);
    # the in-process runner may have claimed it first, then this is a no-op.
    with time_machine.travel(END, tick=False):
        run_forecast(forecast.id)

    deadline = time.monotonic() + 30
    while True:
        # The test client's requests share this test's session: end its
        # transaction, or each poll would see the same snapshot.
        db.session.rollback()  # as the panel polls
        done = client.get(url(workflow, f"/forecast/{forecast.id}"), headers=HX)
        html = done.get_data(as_text=True)
        assert done.status_code == 200
        if "data-hx-get" not in html or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert 'data-status="done"' in html, html
    assert 'id="forecast-table"' in html and 'id="fig-forecast"' in html
    assert re.search(r'id="forecast-enrollments">3<', html)
    badges = json.loads(
        re.search(r'data-forecast-badges="([^"]*)"', html).group(1).replace("&#34;", '"')
    )
    assert badges["hello"] == {"entered": 3, "held": 2}
    figure = json.loads(re.search(r'id="fig-forecast">(.*?)</script>', html, re.S).group(1))
    assert sum(figure["data"][0]["y"]) == 4
    # The panel, opened again, shows the latest forecast.
    again = client.get(url(workflow, "/forecast"), headers=HX).get_data(as_text=True)
    assert 'data-status="done"' in again


def test_bad_days_are_a_form_error_and_start_nothing(client, signed_in, alice, acme):
    workflow, _ = _world(acme)
    token = signed_in(alice)
    for days in ("0", "366", "soon", ""):
        response = post(client, token, url(workflow, "/forecast"), {"days": days})
        body = response.get_data(as_text=True)
        assert response.status_code == 422, (days, body)
        assert 'id="forecast-days-error"' in body and 'aria-invalid="true"' in body
    assert _forecasts(acme.id) == []


def test_another_firms_workflow_and_forecast_are_404(
    client, signed_in, alice, acme, charlie, globex
):
    workflow, _ = _world(acme)
    token = signed_in(alice)
    post(client, token, url(workflow, "/forecast"), {"days": "7"})
    (forecast,) = _forecasts(acme.id)
    theirs = make_workflow(globex, "Theirs")
    assert client.get(url(theirs, "/forecast"), headers=HX).status_code == 404
    assert client.get(url(theirs, f"/forecast/{forecast.id}"), headers=HX).status_code == 404
    mine_elsewhere = make_workflow(acme, "Other of mine")
    wrong = client.get(url(mine_elsewhere, f"/forecast/{forecast.id}"), headers=HX)
    assert wrong.status_code == 404
    with firm_context(globex.id):
        assert db.session.scalar(select(func.count()).select_from(WorkflowForecast)) == 0
