"""A marketer in Chromium: creates a workflow from the list, renames it in
place, sees why it cannot be activated, filters the list without a reload,
and reads a contact's timeline (why the contact got an e-mail)."""

from __future__ import annotations

import re

import pytest

from app.automation.engine.enrollment import enroll
from app.automation.engine.jobs import drain
from app.automation.lifecycle.publishing import activate_workflow
from app.extensions import db
from app.models import Workflow
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow
from tests.web.test_executions_pages import SCORE_EDGES, SCORE_NODES

pytestmark = pytest.mark.browser


def _run_contact_through_a_workflow(acme):
    workflow = make_workflow(
        acme,
        name="Score welcome",
        nodes=SCORE_NODES,
        edges=SCORE_EDGES,
        triggers=[{"trigger_type": "manual"}],
    )
    contact = make_contact(acme, email="hana@example.com", first_name="Hana", score=80)
    with firm_context(acme.id):
        live = db.session.get(Workflow, workflow.id)
        activate_workflow(live)
        db.session.commit()
        enroll(live, [contact.id])
        drain()
    return contact


def test_a_marketer_manages_workflows_and_reads_a_timeline(
    logged_in_page, live_server, alice, acme, screenshot
):
    make_workflow(acme, name="Renewal reminder", status="paused")
    contact = _run_contact_through_a_workflow(acme)
    page = logged_in_page(alice)
    screenshot(page, "pages-01-workflow-list")

    # Create from the list page: the builder opens on the new workflow.
    page.get_by_text("New workflow").click()
    page.get_by_role("textbox", name="Name", exact=True).fill("Spring sale")
    page.get_by_label("Description").fill("Seasonal promotion")
    page.get_by_role("button", name="Create workflow").click()
    page.wait_for_url(re.compile(r".*/automation/builder/\d+"))
    page.goto(f"{live_server.url}/automation")
    row = page.locator("tr", has_text="Spring sale")
    assert row.count() == 1

    # Rename in place (HTMX swaps the row).
    row.get_by_role("link", name="Rename").click()
    field = page.get_by_label(re.compile("New name for"))
    field.fill("Spring sale 2026")
    field.press("Enter")
    page.locator("tr", has_text="Spring sale 2026").wait_for()

    # Activation of an empty draft fails and lists the problems.
    page.locator("tr", has_text="Spring sale 2026").get_by_role("button", name="Activate").click()
    alert = page.locator("#list-messages .alert-error")
    alert.wait_for()
    assert "cannot be activated" in alert.inner_text()
    screenshot(page, "pages-02-activation-problems")

    # Search and filter without a reload; the URL follows for reloads.
    page.evaluate("window.__same_document = true")
    page.get_by_label("Search by name").fill("renewal")
    page.wait_for_url(re.compile(r".*q=renewal.*"))
    page.locator("#workflow-results tr", has_text="Renewal reminder").wait_for()
    assert page.locator("#workflow-results tbody tr").count() == 1
    page.get_by_label("Search by name").fill("")
    page.get_by_label("Status", exact=True).select_option("active")
    page.wait_for_url(re.compile(r".*status=active.*"))
    page.locator("#workflow-results tr", has_text="Score welcome").wait_for()
    assert page.locator("#workflow-results tbody tr").count() == 1
    assert page.evaluate("window.__same_document") is True
    screenshot(page, "pages-03-filtered")
    page.reload()
    assert page.locator("#workflow-results tbody tr").count() == 1

    # The contact's timeline says which rule sent it down the "yes" branch.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Contacts").click()
    page.get_by_role("link", name="Hana").click()
    page.wait_for_url(re.compile(rf".*/contacts/{contact.id}$"))
    timeline = page.locator("#contact-timeline")
    assert "Score welcome" in timeline.inner_text()
    assert "contact.score" in timeline.inner_text()
    assert "Welcome Hana" in timeline.inner_text()
    screenshot(page, "pages-04-contact-timeline")

    # Tags are added in place.
    page.get_by_label("Add a tag").fill("vip")
    page.get_by_role("button", name="Add tag").click()
    page.get_by_role("button", name="Remove tag vip").wait_for()
    assert page.js_errors == []
