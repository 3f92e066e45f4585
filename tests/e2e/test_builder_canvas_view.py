"""The canvas as a marketer sees it, at 1440x900 and on a 390 px phone:
triggers drawn as the entry, cards that say what each step does and fit
their text, a read-only builder on narrow screens. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.canvas_helpers import open_builder, watch_console, welcome_series

pytestmark = pytest.mark.browser


def test_triggers_fan_into_the_entry_and_cards_summarise_their_steps(
    logged_in_page, live_server, alice, acme, screenshot
):
    workflow = welcome_series(acme)
    page = logged_in_page(alice)
    errors = watch_console(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    open_builder(page, live_server, workflow)

    # Both triggers stand above the entry step, each with a line into it.
    triggers = page.locator("#graph .trigger")
    expect(triggers).to_have_count(2)
    expect(page.locator("#graph .trigger-edge")).to_have_count(2)
    assert page.locator("#triggers").get_attribute("data-entry") == "welcome"
    entry = page.locator("#node-welcome .node-box").bounding_box()
    for i in range(2):
        box = triggers.nth(i).bounding_box()
        assert box["y"] + box["height"] < entry["y"]
    expect(triggers.nth(1)).to_contain_text("tag newsletter")

    # Cards say what their step does.
    expect(page.locator("#node-wait .node-summary")).to_have_text("Wait 2 days")
    expect(page.locator("#node-engaged .node-summary")).to_have_text("If score >= 50")
    expect(page.locator("#node-welcome .node-summary")).to_have_text("Send “Welcome!”")
    expect(page.locator("#node-vip .node-summary")).to_have_text("Add tag vip")
    # A long name is cut at the card's edge; the tooltip has all of it.
    label = page.locator("#node-welcome .node-label")
    assert label.evaluate("el => el.scrollWidth > el.clientWidth")
    card = page.locator("#node-welcome .node-box").bounding_box()
    text = label.bounding_box()
    assert text["x"] + text["width"] <= card["x"] + card["width"]
    assert "cannot fit on its card" in page.locator("#node-welcome .node-box title").text_content()
    # Icons come from the SVG sprite, never from an emoji font.
    assert page.locator("#node-welcome use").get_attribute("href").endswith("icons.svg#mail")
    sprite = page.request.get(f"{live_server.url}/static/vendor/icons.svg")
    assert sprite.ok and 'id="mail"' in sprite.text()
    screenshot(page, "builder-canvas-1440x900", full_page=False)

    # A trigger on the canvas opens in the inspector, that trigger first.
    triggers.nth(1).click()
    page.locator(".trigger-card.opened", has_text="Tag added").wait_for()
    expect(page.locator("#graph .trigger.selected")).to_have_count(1)
    assert errors == []


def test_on_a_phone_the_builder_is_read_only_and_does_not_scroll_sideways(
    browser, live_server, alice, acme, screenshot
):
    from tests.factories import PASSWORD

    workflow = welcome_series(acme)
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    page = context.new_page()
    errors = watch_console(page)
    try:
        page.goto("/login")
        page.get_by_label("E-mail").fill(alice.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/automation**")
        open_builder(page, live_server, workflow)
        expect(page.locator("#readonly-note")).to_be_visible()
        expect(page.locator("#readonly-note")).to_contain_text("Read-only")
        expect(page.locator(".palette")).to_be_hidden()
        expect(page.locator("#side-panel")).to_be_hidden()
        width = page.evaluate("document.documentElement.scrollWidth")
        wide = page.evaluate(
            "Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > 391)"
            ".slice(0, 8).map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))"
        )
        screenshot(page, "builder-canvas-390x844", full_page=False)
        assert width <= 390, (width, wide)
        # Every step is in view, and tapping one edits nothing.
        for key in ("welcome", "won"):
            box = page.locator(f"#node-{key} .node-box").bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390
        page.locator("#node-wait .node-box").click()
        page.wait_for_timeout(200)
        expect(page.locator("#inspector")).to_have_count(0)
        screenshot(page, "builder-canvas-390x844", full_page=False)
        assert errors == []
    finally:
        context.close()
