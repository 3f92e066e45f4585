"""The audience editor in Chromium: rules added row by row, the live count
and sample following them, a refusal shown on the field it names, save,
then "enroll this audience now" with its progress bar reaching done; axe
finds nothing serious on the editor or the progress page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.automation.audiences.enroll import run_enrollment
from app.extensions import db
from app.models import Audience, AudienceEnrollment, WorkflowExecution
from app.tenancy import firm_context
from tests.e2e.tour import axe_source, axe_violations, describe
from tests.factories import make_contact, make_workflow

pytestmark = pytest.mark.browser


def _settled(page) -> None:
    page.wait_for_load_state("networkidle")
    expect(page.locator(".htmx-settling, .htmx-swapping, .htmx-request")).to_have_count(0)


def test_edit_count_save_and_enroll(logged_in_page, live_server, alice, acme):
    contacts = [make_contact(acme, score=score) for score in (10, 60, 90)]
    workflow = make_workflow(
        acme,
        name="Nurture",
        status="active",
        nodes=[
            {"node_id": "w", "node_type": "wait_time", "configuration": {"wait_duration_hours": 1}}
        ],
        triggers=[{"trigger_type": "manual"}],
    )
    page = logged_in_page(alice)
    source = axe_source()
    page.goto(f"{live_server.url}/audiences/new")
    page.get_by_role("button", name="+ Field").click()
    rule = page.locator(".rule-row").first
    rule.wait_for()
    assert axe_violations(page, source) == [], describe(axe_violations(page, source))
    rule.get_by_label("Rule 1: field").fill("contact.score")
    rule.get_by_label("Rule 1: operator").select_option("gte")
    rule.get_by_label("Rule 1: value").fill("50")
    expect(page.locator("#audience-count")).to_have_text("2", timeout=15_000)
    expect(page.locator("#audience-sample tbody tr")).to_have_count(2)
    rule.get_by_label("Rule 1: value").fill("80")
    expect(page.locator("#audience-count")).to_have_text("1", timeout=15_000)
    expect(page.locator("#audience-sample tbody tr")).to_have_count(1)
    expect(page.locator("#audience-sample")).to_contain_text(contacts[2].email)
    _settled(page)

    # Saved without a name: refused on the name field, the rules kept.
    page.get_by_role("button", name="Create audience").click()
    expect(page.locator("#audience-name-error")).to_be_visible()
    assert page.locator("#audience-name").get_attribute("aria-invalid") == "true"
    expect(page.get_by_label("Rule 1: value")).to_have_value("80")
    assert axe_violations(page, source) == [], describe(axe_violations(page, source))
    page.locator("#audience-name").fill("Hot")
    page.get_by_role("button", name="Create audience").click()
    expect(page.locator("h1")).to_have_text("Hot")
    expect(page.locator("#audience-count")).to_have_text("1")
    db.session.expire_all()
    with firm_context(acme.id):
        audience = db.session.scalars(select(Audience)).one()
        assert audience.rules == [{"field": "contact.score", "op": "gte", "value": 80}]
    db.session.commit()

    # Enroll with no workflow chosen: refused on the picker; then for real.
    page.get_by_role("button", name="Enroll", exact=True).click()
    expect(page.locator("#enroll-workflow-error")).to_be_visible()
    page.get_by_label("Workflow").select_option(str(workflow.id))
    page.get_by_role("button", name="Enroll", exact=True).click()
    page.locator("#enroll-progress").wait_for()
    db.session.expire_all()
    with firm_context(acme.id):
        job_id = db.session.scalars(select(AudienceEnrollment.id)).one()
    db.session.commit()
    run_enrollment(job_id)  # a worker's part, unless the in-process runner has it
    done = page.locator('#enroll-progress[data-status="done"]')
    done.wait_for(timeout=15_000)
    assert done.get_by_role("progressbar").get_attribute("aria-valuenow") == "100"
    expect(page.locator("#enroll-counts")).to_contain_text("1 started")
    assert axe_violations(page, source) == [], describe(axe_violations(page, source))
    with firm_context(acme.id):
        started = db.session.scalars(select(WorkflowExecution.contact_id)).all()
    assert started == [contacts[2].id]
    assert page.js_errors == []
