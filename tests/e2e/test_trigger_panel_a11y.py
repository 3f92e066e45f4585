"""The trigger panel opened from the canvas (an enabled and a disabled
trigger, their badges) and the admin page's active badges pass axe-core:
no serious or critical violation."""

from __future__ import annotations

import pytest

from tests.e2e.canvas_helpers import open_builder, watch_console, welcome_series
from tests.e2e.tour import axe_source, axe_violations, describe

pytestmark = pytest.mark.browser


def test_the_trigger_panel_and_its_badges_pass_axe(logged_in_page, live_server, alice, acme):
    from app.extensions import db
    from app.tenancy import firm_context

    workflow = welcome_series(acme)
    with firm_context(acme.id):
        workflow.triggers[1].is_active = False
        db.session.commit()
    page = logged_in_page(alice)
    errors = watch_console(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    open_builder(page, live_server, workflow)
    page.locator("#graph .trigger").first.click()
    page.locator(".trigger-card.opened").wait_for()
    page.locator(".trigger-card .badge-active").first.wait_for()
    source = axe_source()
    found = axe_violations(page, source)
    assert found == [], describe(found)
    page.goto(f"{live_server.url}/admin")
    page.locator(".badge-active").first.wait_for()
    found = axe_violations(page, source)
    assert found == [], describe(found)
    assert errors == []
