"""The builder in Chromium: build the seed's Welcome Campaign by hand.

Drag steps from the palette, connect their ports, fill the inspector, add a
trigger, reload (the canvas is the same: everything was saved as it
happened), activate. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from playwright.sync_api import expect
from sqlalchemy import select

from app.automation.engine.jobs import drain
from app.clock import now
from app.extensions import db
from app.models import Workflow
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow

pytestmark = pytest.mark.browser


def drop_step(page, node_type: str, x: int, y: int) -> None:
    """Drag a palette item onto the canvas at (x, y) relative to the canvas."""
    page.locator(f'.palette-item[data-node-type="{node_type}"]').drag_to(
        page.locator("#canvas"), target_position={"x": x, "y": y}
    )


def connect(page, source: str, port: str, target: str) -> None:
    # The canvas redraws after each save; let it settle before measuring.
    page.wait_for_load_state("networkidle")
    handle = page.locator(f'#node-{source} .port-out[data-port="{port}"] circle')
    handle.wait_for()
    box = handle.bounding_box()
    goal = page.locator(f"#node-{target} .node-box").bounding_box()
    assert box and goal, "the canvas was redrawn while measuring"
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(goal["x"] + goal["width"] / 2, goal["y"] + goal["height"] / 2, steps=8)
    page.mouse.up()


def open_panel(page, name: str, ready: str) -> None:
    """Open a side panel and wait until htmx has wired up its controls."""
    page.get_by_role("link", name=re.compile(name)).click()
    page.locator(ready).wait_for()
    page.wait_for_load_state("networkidle")
    expect(page.locator(".htmx-settling, .htmx-swapping, .htmx-request")).to_have_count(0)


def fill_inspector(page, fields: dict[str, str], selects: dict[str, str] | None = None) -> None:
    panel = page.locator("#inspector")
    if "node_id" in fields:
        panel.locator("details.advanced summary", has_text="Step id").click()
    for name, value in fields.items():
        panel.locator(f'[name="{name}"]').fill(value)
    for name, value in (selects or {}).items():
        panel.locator(f'select[name="{name}"]').select_option(value)
    panel.get_by_role("button", name="Save step").click()
    page.locator("#inspector .flash-success").wait_for()


def test_a_marketer_builds_and_activates_the_welcome_campaign(
    logged_in_page, live_server, alice, acme, screenshot
):
    workflow = make_workflow(acme, name="Welcome Campaign")
    make_contact(acme, email="ada@example.com", first_name="Ada")
    page = logged_in_page(alice, remember=True)  # the test spans two days
    page.goto(f"{live_server.url}/automation/builder/{workflow.id}")
    page.locator("#canvas").wait_for()

    # 1. An e-mail, dropped where the pointer lets go; the inspector opens.
    drop_step(page, "send_email", 360, 90)
    page.locator("#inspector[data-node-id='send_email']").wait_for()
    fill_inspector(
        page,
        {
            "label": "Send Welcome Email",
            "node_id": "send_welcome_email",
            "subject": "Welcome!",
            "body_text": "Hi {{ contact.first_name }}",
        },
    )
    page.locator("#node-send_welcome_email").wait_for()
    # The live preview renders the template for a sample contact.
    page.locator("#inspector .preview-text", has_text="Hi Ada").first.wait_for()

    # 2. A 48-hour wait, typed in hours.
    drop_step(page, "wait_time", 360, 250)
    page.locator("#inspector[data-node-id='wait_time']").wait_for()
    fill_inspector(
        page,
        {"label": "Wait 2 Days", "node_id": "wait_2_days", "wait_value": "48"},
        {"wait_unit": "hours"},
    )

    # 3. The goal.
    drop_step(page, "goal", 360, 410)
    page.locator("#inspector[data-node-id='goal']").wait_for()
    fill_inspector(page, {"label": "Goal"})

    # Connect the ports: email -> wait -> goal.
    connect(page, "send_welcome_email", "next", "wait_2_days")
    page.locator('.edge[data-source="send_welcome_email"]').wait_for(state="attached")
    connect(page, "wait_2_days", "next", "goal")
    page.locator('.edge[data-source="wait_2_days"]').wait_for(state="attached")

    # Without a trigger the workflow cannot start: the problems panel says so.
    page.locator("#problems", has_text="add an active trigger").wait_for()
    open_panel(page, "Triggers", "#new-trigger-type")
    page.locator("#new-trigger-type").select_option("contact_created")
    page.get_by_role("button", name="Add trigger").click()
    page.locator(".trigger-card", has_text="Contact created").wait_for()
    page.locator("#problems", has_text="Ready to activate").wait_for()
    screenshot(page, "builder-welcome-campaign-built")

    positions = {
        key: page.locator(f"#node-{key}").get_attribute("transform")
        for key in ("send_welcome_email", "wait_2_days", "goal")
    }

    # Reload: the same canvas, from the server.
    page.reload()
    page.locator("#node-goal").wait_for()
    for key, transform in positions.items():
        assert page.locator(f"#node-{key}").get_attribute("transform") == transform
    assert page.locator(".edge").count() == 2
    assert page.locator(".edge-label").count() == 0  # plain edges carry no label
    page.get_by_role("link", name=re.compile("Triggers")).click()
    page.locator(".trigger-card", has_text="Contact created").wait_for()

    # Activate from the builder.
    page.get_by_role("button", name="Activate").click()
    page.locator("#workflow-status", has_text="active").wait_for()
    # A new contact enters (contact_created); the canvas counts, polled every
    # 5 s, show it waiting on the 48-hour wait, then, two days later, at the goal.
    page.locator('[data-live-for="wait_2_days"]', has_text="0 waiting").wait_for()
    make_contact(acme, email="grace@example.com", first_name="Grace")
    drain()
    expect(page.locator('[data-live-for="wait_2_days"]')).to_contain_text(
        "1 waiting", timeout=12_000
    )
    screenshot(page, "builder-welcome-campaign-active")
    with time_machine.travel(now() + timedelta(hours=49), tick=True):
        drain()
        expect(page.locator('[data-live-for="goal"]')).to_contain_text("1 visit", timeout=12_000)
    expect(page.locator('[data-live-for="wait_2_days"]')).to_contain_text("0 waiting")
    screenshot(page, "builder-welcome-campaign-goal-reached")

    # A test run for Ada: each step listed, the path lit on the canvas.
    open_panel(page, "Test run", "#test-contact")
    page.locator("#test-contact").select_option(label="ada@example.com — Ada")
    page.get_by_role("button", name="Run test").click()
    page.locator(".test-result").wait_for()
    expect(page.locator("#graph .node.on-path")).to_have_count(3)
    assert page.locator("#graph .edge.on-path").count() == 2
    screenshot(page, "builder-welcome-campaign-test-run")
    assert page.js_errors == []

    db.session.expire_all()
    with firm_context(acme.id):
        stored = db.session.scalars(select(Workflow).where(Workflow.id == workflow.id)).one()
        assert stored.status == "active"
        nodes = {node.node_id: node for node in stored.nodes}
        assert set(nodes) == {"send_welcome_email", "wait_2_days", "goal"}
        assert nodes["send_welcome_email"].configuration["subject"] == "Welcome!"
        assert nodes["wait_2_days"].configuration["wait_duration_hours"] == 48
        assert [t.trigger_type for t in stored.triggers] == ["contact_created"]
        assert {(e.source_node.node_id, e.target_node.node_id) for e in stored.edges} == {
            ("send_welcome_email", "wait_2_days"),
            ("wait_2_days", "goal"),
        }


def test_keyboard_selection_delete_and_zoom(logged_in_page, live_server, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=[
            {"node_id": "tag_it", "node_type": "add_tag", "configuration": {"tag": "a"}},
            {"node_id": "untag", "node_type": "remove_tag", "configuration": {"tag": "a"}},
        ],
        edges=[("tag_it", "untag")],
    )
    page = logged_in_page(alice)
    page.goto(f"{live_server.url}/automation/builder/{workflow.id}?node=untag")
    # ?node= selects the step and opens its inspector.
    page.locator("#node-untag.selected").wait_for()
    page.locator("#inspector[data-node-id='untag']").wait_for()

    # Tab reaches the steps; Enter opens the inspector.
    page.locator("#node-tag_it").focus()
    page.keyboard.press("Enter")
    page.locator("#inspector[data-node-id='tag_it']").wait_for()

    # Select a connection (Tab reaches it; Enter selects), press Delete: it
    # is gone, also after a reload.
    page.locator(".edge").first.focus()
    page.keyboard.press("Enter")
    page.locator(".edge.selected").wait_for(state="attached")
    page.keyboard.press("Delete")
    page.locator(".edge").wait_for(state="detached")
    page.reload()
    page.locator("#node-untag").wait_for()
    assert page.locator(".edge").count() == 0

    # Click a step, press Delete: the step goes; Backspace on a panel button does nothing.
    page.locator("#node-tag_it .node-box").click()
    page.locator("#inspector[data-node-id='tag_it']").wait_for()
    page.locator("#inspector").get_by_role("button", name="Save step").focus()
    page.keyboard.press("Backspace")
    page.wait_for_timeout(300)
    assert page.locator("#node-tag_it").count() == 1
    page.locator("#node-tag_it .node-box").click()
    page.keyboard.press("Delete")
    page.locator("#node-tag_it").wait_for(state="detached")

    # Zoom buttons change the view; the view survives a reload.
    before = page.locator("#viewport").get_attribute("transform")
    page.get_by_role("button", name="Zoom in").click()
    after = page.locator("#viewport").get_attribute("transform")
    assert after != before
    page.wait_for_timeout(800)  # the view is saved after a short pause
    page.reload()
    page.locator("#node-untag").wait_for()
    assert page.locator("#viewport").get_attribute("transform") == after
    assert page.js_errors == []
