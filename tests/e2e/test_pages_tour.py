"""Every page of the app renders in Chromium without script or CSP errors,
with data and empty, keyboard focus is visible, and the forms editor,
admin token and dead-letter flows work in a real browser."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import DeadLetter, Form, WorkflowExecution
from app.tenancy import firm_context
from tests.e2e.test_pages_marketer import _run_contact_through_a_workflow
from tests.factories import make_contact

pytestmark = pytest.mark.browser

PAGES = [
    "/automation",
    "/contacts",
    "/contacts/new",
    "/executions",
    "/dead-letters",
    "/outbox",
    "/forms",
    "/lists",
    "/tags",
    "/admin",
    "/admin/queues",
]


def test_every_page_renders_empty_without_errors(logged_in_page, live_server, alice, screenshot):
    page = logged_in_page(alice)
    for path in PAGES:
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        assert page.locator("h1").count() == 1, path
        screenshot(page, f"tour-empty{path.replace('/', '-')}")
    assert page.js_errors == []


def test_pages_with_data_and_the_main_flows(logged_in_page, live_server, alice, acme, screenshot):
    contact = _run_contact_through_a_workflow(acme)
    make_contact(acme, email="second@example.com")
    with firm_context(acme.id):
        execution = db.session.scalars(select(WorkflowExecution)).first()
        db.session.add(
            DeadLetter(
                execution_id=execution.id,
                workflow_id=execution.workflow_id,
                node_id="send_welcome",
                error="SMTP 550 mailbox unavailable",
            )
        )
        db.session.commit()
    page = logged_in_page(alice)

    # Keyboard: Tab reaches the skip link first, and focus is drawn.
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert "Skip to content" in focused

    for path in ("/contacts", "/executions", "/dead-letters", "/outbox"):
        page.goto(f"{live_server.url}{path}")
        screenshot(page, f"tour-data{path.replace('/', '-')}")
    page.goto(f"{live_server.url}/executions/{execution.id}")
    assert "Welcome Hana" in page.locator("main").inner_text()
    screenshot(page, "tour-data-execution")

    # A form: create it, add a custom field, see the public link.
    page.goto(f"{live_server.url}/forms")
    page.get_by_label("New form").fill("Newsletter")
    page.get_by_role("button", name="Create form").click()
    page.wait_for_url(re.compile(r".*/forms/\d+$"))
    page.get_by_label("Contact field of row 3").fill("custom.company")
    page.get_by_label("Label of row 3").fill("Company")
    page.get_by_role("button", name="Save form").click()
    page.get_by_text("Form saved.").wait_for()
    with firm_context(acme.id):
        db.session.expire_all()
        form = db.session.scalars(select(Form)).one()
        assert [f["name"] for f in form.fields] == ["email", "first_name", "custom.company"]
    assert form.form_key in page.get_by_label("Public link").input_value()
    screenshot(page, "tour-form-editor")

    # An API token is shown once.
    page.goto(f"{live_server.url}/admin")
    page.get_by_label("Token name").fill("CRM sync")
    page.get_by_role("button", name="Issue token").click()
    token = page.locator("#new-token").inner_text()
    assert token.startswith("atk_")
    screenshot(page, "tour-admin-token")

    # Bulk-add from the contact list.
    page.goto(f"{live_server.url}/contacts")
    page.get_by_label("Select second@example.com").check()
    page.get_by_role("button", name="Add selected").click()
    page.get_by_text(re.compile(r"Started .Score welcome. for 1 contact")).wait_for()
    page.goto(f"{live_server.url}/contacts/{contact.id}")
    assert page.js_errors == []
