"""In Chromium: the diff, the publish dialog's mapping and the gallery work
end to end, without CSP or JavaScript errors."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.automation.lifecycle.publishing import publish
from app.extensions import db
from app.models import Workflow, WorkflowExecution
from app.tenancy import firm_context
from tests.lifecycle.helpers import nurture_workflow, park

pytestmark = pytest.mark.browser


def test_a_marketer_maps_waiting_contacts_and_publishes(
    acme, alice, bob, logged_in_page, screenshot
):
    workflow = nurture_workflow(acme)
    with firm_context(acme.id):
        publish(workflow, alice)
    ids = park(acme, workflow, "send_tips", 3)
    with firm_context(acme.id):
        wf = db.session.get(Workflow, workflow.id)
        wf.node_by_key("send_tips").configuration = {"subject": "Fresh tips", "body_text": "x"}
        db.session.commit()

    tab = logged_in_page(bob)
    tab.goto(f"/automation/{workflow.id}/publish")
    assert tab.locator("#mapping tbody tr").count() == 1
    assert tab.locator(".diff-node.diff-changed").count() == 1
    tab.get_by_label("send_tips").select_option("wait_1_day")
    screenshot(tab, "lifecycle-publish-dialog")
    tab.get_by_role("button", name="Publish").click()
    tab.wait_for_url(f"**/automation/{workflow.id}/versions")
    assert "3 contacts moved" in tab.locator(".flash").first.inner_text()
    assert tab.locator("#versions tbody tr").count() == 2
    with firm_context(acme.id):
        rows = db.session.scalars(
            select(WorkflowExecution).where(WorkflowExecution.id.in_(ids))
        ).all()
        assert {(r.version, r.current_node) for r in rows} == {(2, "wait_1_day")}

    tab.goto(f"/automation/{workflow.id}/versions?base=1&to=2")
    assert tab.locator("#diff .diff-node.diff-changed").count() == 1
    screenshot(tab, "lifecycle-versions-diff")
    assert tab.js_errors == []


def test_creating_from_the_gallery_opens_the_builder(acme, bob, logged_in_page, screenshot):
    tab = logged_in_page(bob)
    tab.goto("/automation/templates")
    screenshot(tab, "lifecycle-template-gallery")
    card = tab.locator("#template-lead_nurture")
    card.get_by_label("Name").fill("Spring nurture")
    card.get_by_role("button", name="Create from template").click()
    tab.wait_for_url("**/automation/builder/**")
    with firm_context(acme.id):
        assert db.session.scalars(select(Workflow.name)).all() == ["Spring nurture"]
    assert tab.js_errors == []
