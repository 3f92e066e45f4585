"""The dashboard in Chromium: every figure drawn by plotly.js, no CSP or JS errors."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from app.clock import now
from tests.analytics import history
from tests.e2e.conftest import browser, live_server, logged_in_page, page, screenshot  # noqa: F401

pytestmark = pytest.mark.browser


def recent_history(firm):
    """The known history, moved to yesterday (the live server runs on the real clock)."""
    shift = now() - timedelta(days=1) - history.START
    runs = [
        dataclasses.replace(
            run, start=run.start + shift, wake_at=run.wake_at + shift if run.wake_at else None
        )
        for run in history.RUNS
    ]
    return history.build(firm, runs)


def test_the_dashboard_draws_every_figure(logged_in_page, live_server, alice, acme, screenshot):  # noqa: F811
    workflow = recent_history(acme)
    tab = logged_in_page(alice)
    tab.goto(f"{live_server.url}/automation/analytics/{workflow.id}?days=7")
    for name in ("executions", "goals", "sankey", "funnel", "completion", "cohorts", "ab"):
        tab.locator(f"#chart-{name}[data-drawn='true'] .main-svg").first.wait_for(timeout=30_000)
    assert tab.locator("#stat-total").inner_text() == "10"
    assert "two-proportion z-test" in tab.locator("#ab-tests").inner_text()
    screenshot(tab, "analytics-dashboard")
    assert tab.js_errors == []


def test_the_custom_period_form_shows_field_errors(logged_in_page, live_server, alice, acme):  # noqa: F811
    workflow = recent_history(acme)
    tab = logged_in_page(alice)
    tab.goto(f"{live_server.url}/automation/analytics/{workflow.id}")
    tab.get_by_label("From", exact=True).fill("2026-03-10")
    tab.get_by_label("To", exact=True).fill("2026-03-01")
    tab.get_by_role("button", name="Show").click()
    tab.locator("#end-error").wait_for()
    assert "before the start date" in tab.locator("#end-error").inner_text()
    assert tab.js_errors == []
