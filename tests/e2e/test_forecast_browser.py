"""The forecast panel in Chromium: days, progress, then the table, the
chart and a badge on each card (docs/FORECAST.md)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.automation.analytics.forecast import run_forecast
from app.extensions import db
from app.models import WorkflowForecast
from app.tenancy import firm_context
from tests.analytics.test_forecast import _world
from tests.e2e.test_builder_browser import open_panel

pytestmark = pytest.mark.browser


def test_a_forecast_paints_badges_table_and_chart(logged_in_page, live_server, alice, acme):
    workflow, _ = _world(acme)
    page = logged_in_page(alice)
    page.goto(f"{live_server.url}/automation/builder/{workflow.id}")
    page.locator("#node-hello").wait_for()
    open_panel(page, "Forecast", "#forecast-days")
    # A year of events: the recorded ones lie in November 2026.
    page.locator("#forecast-days").fill("365")
    page.get_by_role("button", name="Forecast", exact=True).click()
    page.locator("#forecast-result").wait_for()
    db.session.expire_all()
    with firm_context(acme.id):
        forecast = db.session.scalars(select(WorkflowForecast)).one()
    db.session.commit()
    run_forecast(forecast.id)  # a worker's part, unless the in-process runner has it
    page.locator("#forecast-table").wait_for(timeout=15_000)
    # The event 40 days before the end counts too over a year: four enter.
    expect(page.locator('[data-forecast-for="hello"]')).to_have_text("forecast: 4 entered, 2 held")
    expect(page.locator('[data-forecast-for="mark"]')).to_have_text("forecast: 3 entered")
    page.locator("#chart-forecast[data-drawn]").wait_for(timeout=15_000)
    assert page.locator("#forecast-enrollments").inner_text() == "4"
    assert page.js_errors == []

    page.locator("#forecast-days").fill("0")
    page.get_by_role("button", name="Forecast", exact=True).click()
    expect(page.locator("#forecast-days-error")).to_contain_text("between 1 and 365")
    assert page.locator("#forecast-days").get_attribute("aria-invalid") == "true"
