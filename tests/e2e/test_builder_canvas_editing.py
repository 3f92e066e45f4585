"""Editing on the canvas in Chromium, checked in the database: undo of a
delete, palette search, a workflow built with the keyboard alone, steps
never dropped under a panel, insert on a connection, copy and paste across
workflows, Tidy. No console errors anywhere."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import Workflow
from app.tenancy import firm_context
from tests.e2e.canvas_helpers import open_builder, stored, watch_console, welcome_series
from tests.factories import make_workflow

pytestmark = pytest.mark.browser


def chain(firm, name="Chain"):
    return make_workflow(
        firm,
        name=name,
        nodes=[
            {
                "node_id": key,
                "node_type": "add_tag",
                "label": f"Tag {key}",
                "configuration": {"tag": key},
                "position_x": 300,
                "position_y": 80 + 140 * i,
            }
            for i, key in enumerate(("a", "b", "c"))
        ],
        edges=[("a", "b"), ("b", "c")],
    )


def settle(page) -> None:
    page.wait_for_load_state("networkidle")
    expect(page.locator(".htmx-request")).to_have_count(0)


def boxes_overlap(a, b) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_undo_of_a_delete_restores_the_step_and_its_connections(
    logged_in_page, live_server, alice, acme, screenshot
):
    workflow = chain(acme)
    page = logged_in_page(alice)
    errors = watch_console(page)
    open_builder(page, live_server, workflow)

    page.locator("#node-b .node-box").click()
    page.locator("#inspector[data-node-id='b']").wait_for()
    page.keyboard.press("Delete")
    page.locator("#node-b").wait_for(state="detached")
    page.locator("#builder-status", has_text="Step deleted").wait_for()
    screenshot(page, "builder-canvas-deleted-undo-toast", full_page=False)
    assert set(stored(acme, workflow.id)["nodes"]) == {"a", "c"}
    assert stored(acme, workflow.id)["edges"] == set()

    page.keyboard.press("Control+z")
    page.locator("#node-b").wait_for()
    after = stored(acme, workflow.id)
    assert after["edges"] == {("a", "next", "b"), ("b", "next", "c")}
    assert after["nodes"]["b"]["config"] == {"tag": "b"} and after["nodes"]["b"]["label"] == "Tag b"
    expect(page.locator(".edge")).to_have_count(2)

    # Redo from the keyboard, undo again with the toolbar button.
    page.keyboard.press("Control+Shift+z")
    page.locator("#node-b").wait_for(state="detached")
    page.get_by_role("button", name="Undo").first.click()
    page.locator("#node-b").wait_for()
    assert stored(acme, workflow.id)["edges"] == {("a", "next", "b"), ("b", "next", "c")}

    # Unsaved inspector edits are not lost by clicking another step.
    page.locator("#node-b .node-box").click()
    page.locator("#inspector[data-node-id='b']").wait_for()
    settle(page)
    view = page.locator("#viewport").get_attribute("transform")
    page.locator("#inspector [name='label']").fill("Tag b, renamed")
    expect(page.locator("#inspector [data-save-state]")).to_have_text("Unsaved changes")
    page.locator("#node-a .node-box").click()
    dialog = page.locator("#unsaved-dialog")
    expect(dialog).to_be_visible()
    screenshot(page, "builder-canvas-unsaved-changes", full_page=False)
    dialog.get_by_role("button", name="Save").click()
    page.locator("#inspector[data-node-id='a']").wait_for()
    assert stored(acme, workflow.id)["nodes"]["b"]["label"] == "Tag b, renamed"
    settle(page)
    # Saving redrew the canvas without moving the view.
    expect(page.locator("#node-b .node-label")).to_have_text("Tag b, renamed")
    assert page.locator("#viewport").get_attribute("transform") == view

    # A panel link asks too: keep editing leaves the form as typed; discard
    # opens the other panel and stores nothing.
    page.locator("#inspector [name='label']").fill("Tag a, unsaved")
    page.get_by_role("link", name="Settings").click()
    dialog.get_by_role("button", name="Keep editing").click()
    expect(page.locator("#inspector [name='label']")).to_have_value("Tag a, unsaved")
    page.get_by_role("link", name="Settings").click()
    dialog.get_by_role("button", name="Discard").click()
    page.locator("#s-name").wait_for()
    assert stored(acme, workflow.id)["nodes"]["a"]["label"] == "Tag a"
    settle(page)
    assert errors == []


def test_search_filters_the_palette_and_a_keyboard_builds_three_connected_steps(
    logged_in_page, live_server, alice, acme, screenshot
):
    workflow = make_workflow(acme, name="Typed")
    page = logged_in_page(alice)
    errors = watch_console(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    open_builder(page, live_server, workflow)

    # Goal is in view without scrolling the palette.
    goal = page.locator('.palette-item[data-node-type="goal"]').bounding_box()
    palette = page.locator(".palette").bounding_box()
    assert goal["y"] + goal["height"] <= palette["y"] + palette["height"]

    # Tab to the search box: the keyboard alone from here on.
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "palette-q":
            break
    assert page.evaluate("document.activeElement.id") == "palette-q"
    page.keyboard.type("email")
    visible = page.locator(".palette-item:visible")
    expect(visible).to_have_count(1)
    expect(visible).to_have_attribute("data-node-type", "send_email")
    page.keyboard.press("Enter")
    page.locator("#node-send_email.selected").wait_for()
    page.locator("#inspector[data-node-id='send_email']").wait_for()

    page.keyboard.press("Control+a")
    page.keyboard.type("if else")
    expect(visible).to_have_count(1)
    page.keyboard.press("Enter")
    page.locator("#node-condition.selected").wait_for()
    page.keyboard.press("Control+a")
    page.keyboard.type("goal")
    page.keyboard.press("Enter")
    page.locator("#node-goal.selected").wait_for()
    settle(page)
    assert stored(acme, workflow.id)["edges"] == {
        ("send_email", "next", "condition"),
        ("condition", "yes", "goal"),
    }
    # Each new step landed in view.
    canvas = page.locator("#canvas").bounding_box()
    for key in ("send_email", "condition", "goal"):
        box = page.locator(f"#node-{key} .node-box").bounding_box()
        assert (
            canvas["y"] <= box["y"] and box["y"] + box["height"] <= canvas["y"] + canvas["height"]
        )

    # Connect the if/else's "No" to the goal: Tab to it, C, pick the target.
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "node-condition":
            break
    assert page.evaluate("document.activeElement.id") == "node-condition"
    page.keyboard.press("c")
    dialog = page.locator("#connect-dialog")
    expect(dialog).to_be_visible()
    screenshot(page, "builder-canvas-connect-dialog", full_page=False)
    expect(page.locator("#connect-port")).to_have_value("no")
    page.keyboard.type("Goal")
    expect(page.locator("#connect-target")).to_have_value("goal")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "connect-ok"
    page.keyboard.press("Enter")
    page.locator('.edge[data-source="condition"][data-port="no"]').wait_for(state="attached")
    assert ("condition", "no", "goal") in stored(acme, workflow.id)["edges"]
    settle(page)
    assert errors == []


def test_steps_land_clear_of_the_panels_and_insert_on_a_connection(
    logged_in_page, live_server, alice, acme, screenshot
):
    workflow = chain(acme)
    page = logged_in_page(alice)
    errors = watch_console(page)
    open_builder(page, live_server, workflow)
    panels = [
        page.locator(sel).bounding_box() for sel in (".canvas-tools", "#minimap", "#problems")
    ]
    canvas = page.locator("#canvas").bounding_box()

    # Dropped on the toolbar, and on the minimap: the step lands in the clear.
    item = page.locator('.palette-item[data-node-type="goal"]')
    for selector, key in ((".canvas-tools", "goal"), ("#minimap", "goal_2")):
        item.drag_to(page.locator(selector), force=True)
        page.locator(f"#node-{key}").wait_for()
        box = page.locator(f"#node-{key} .node-box").bounding_box()
        assert not any(boxes_overlap(box, panel) for panel in panels), (key, box, panels)
        assert canvas["x"] <= box["x"] and box["x"] + box["width"] <= canvas["x"] + canvas["width"]
        assert (
            canvas["y"] <= box["y"] and box["y"] + box["height"] <= canvas["y"] + canvas["height"]
        )

    # Pan c towards the bottom edge; a step added after it comes into view.
    page.locator("#node-c .node-box").click()
    page.locator("#inspector[data-node-id='c']").wait_for()
    settle(page)
    page.mouse.move(canvas["x"] + 40, canvas["y"] + 40)
    page.mouse.down()
    page.mouse.move(canvas["x"] + 40, canvas["y"] + 40 + 120, steps=5)
    page.mouse.up()
    page.locator("#node-c .node-box").click(position={"x": 120, "y": 8})
    page.locator('.palette-item[data-node-type="wait_time"]').click()
    page.locator("#node-wait_time").wait_for()
    box = page.locator("#node-wait_time .node-box").bounding_box()
    assert not any(boxes_overlap(box, panel) for panel in panels)
    assert canvas["y"] <= box["y"] and box["y"] + box["height"] <= canvas["y"] + canvas["height"]
    assert ("c", "next", "wait_time") in stored(acme, workflow.id)["edges"]

    # The "+" on a -> b, then a palette step: spliced in, connected both ways.
    edge = page.locator('.edge[data-source="a"][data-target="b"]').get_attribute("data-edge-id")
    page.locator(f'.edge-add[data-edge-id="{edge}"]').click()
    expect(page.locator("#insert-note")).to_contain_text("between “Tag a” and “Tag b”")
    screenshot(page, "builder-canvas-insert-on-connection", full_page=False)
    page.locator('.palette-item[data-node-type="add_tag"]').click()
    page.locator("#node-add_tag").wait_for()
    edges = stored(acme, workflow.id)["edges"]
    assert {("a", "next", "add_tag"), ("add_tag", "next", "b")} <= edges
    assert ("a", "next", "b") not in edges
    settle(page)
    assert errors == []


def test_copy_paste_across_workflows_duplicate_and_tidy(
    logged_in_page, live_server, alice, acme, screenshot
):
    source = welcome_series(acme, name="Source")
    target = chain(acme, name="Target")
    page = logged_in_page(alice)
    errors = watch_console(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    open_builder(page, live_server, source)
    page.locator("#node-wait .node-box").click()
    page.locator("#node-engaged .node-box").click(modifiers=["Shift"])
    expect(page.locator("#graph .node.selected")).to_have_count(2)
    page.keyboard.press("Control+c")
    page.locator("#builder-status", has_text="2 steps copied").wait_for()
    settle(page)

    open_builder(page, live_server, target)
    page.keyboard.press("Control+v")
    page.locator("#node-wait").wait_for()
    after = stored(acme, target.id)
    assert after["nodes"]["wait"]["config"] == {"wait_duration_hours": 48}
    assert after["nodes"]["engaged"]["type"] == "condition"
    assert ("wait", "next", "engaged") in after["edges"]
    expect(page.locator("#graph .node.selected")).to_have_count(2)

    # Ctrl+D duplicates the selection, connections among it included.
    page.keyboard.press("Control+d")
    page.locator("#node-wait_2").wait_for()
    assert ("wait_2", "next", "engaged_2") in stored(acme, target.id)["edges"]

    # Tidy lays the graph out top to bottom, on the server; undo puts it back.
    before = {key: node["xy"] for key, node in stored(acme, target.id)["nodes"].items()}
    page.get_by_role("button", name="Tidy").click()
    page.locator("#builder-status", has_text="Tidied").wait_for()
    settle(page)
    tidied = {key: node["xy"] for key, node in stored(acme, target.id)["nodes"].items()}
    assert tidied != before
    assert tidied["a"][1] < tidied["b"][1] < tidied["c"][1]
    assert tidied["wait"][1] < tidied["engaged"][1]
    screenshot(page, "builder-canvas-tidied-1440x900", full_page=False)
    page.keyboard.press("Control+z")
    page.locator("#builder-status", has_text="Undone: Tidy").wait_for()
    assert {key: node["xy"] for key, node in stored(acme, target.id)["nodes"].items()} == before
    settle(page)
    assert errors == []


def _tag(key: str, x: int, y: int) -> dict:
    return {
        "node_id": key,
        "node_type": "add_tag",
        "configuration": {"tag": key},
        "position_x": x,
        "position_y": y,
    }


def test_tidy_keeps_yes_left_of_no_and_variants_in_order(logged_in_page, live_server, alice, acme):
    """Steps made in the 'wrong' order and placed crosswise: after Tidy the
    yes branch is left of the no branch, variants A, B, C left to right."""
    variants = [{"name": n, "weight": w} for n, w in (("A", 34), ("B", 33), ("C", 33))]
    workflow = make_workflow(
        acme,
        name="Branches",
        nodes=[
            {
                "node_id": "split",
                "node_type": "split",
                "configuration": {"variants": variants},
                "position_x": 600,
                "position_y": 40,
            },
            _tag("vc", 100, 200),
            _tag("vb", 1100, 200),
            _tag("va", 600, 200),
            {
                "node_id": "check",
                "node_type": "condition",
                "configuration": {"rules": [{"tag": "vip", "op": "has"}]},
                "position_x": 100,
                "position_y": 400,
            },
            _tag("no", 100, 600),
            _tag("yes", 700, 600),
        ],
        edges=[
            ("split", "vc", "variant", {"variant": "C"}),
            ("split", "va", "variant", {"variant": "A"}),
            ("split", "vb", "variant", {"variant": "B"}),
            ("vc", "check"),
            ("check", "no", "no"),
            ("check", "yes", "yes"),
        ],
    )
    page = logged_in_page(alice)
    errors = watch_console(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    open_builder(page, live_server, workflow)
    page.get_by_role("button", name="Tidy").click()
    page.locator("#builder-status", has_text="Tidied").wait_for()
    settle(page)
    xy = {key: node["xy"] for key, node in stored(acme, workflow.id)["nodes"].items()}
    assert xy["va"][0] < xy["vb"][0] < xy["vc"][0], xy
    assert xy["yes"][0] < xy["no"][0], xy
    assert xy["split"][1] < xy["va"][1] == xy["vb"][1] == xy["vc"][1] < xy["check"][1]
    assert errors == []


def test_undo_takes_back_a_trigger_edit_on_the_canvas_and_in_its_panel(
    logged_in_page, live_server, alice, acme
):
    workflow = welcome_series(acme)
    page = logged_in_page(alice)
    errors = watch_console(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    open_builder(page, live_server, workflow)
    page.locator("#graph .trigger").first.click()
    card = page.locator(".trigger-card.opened")
    card.wait_for()
    card.get_by_role("button", name="Disable").click()
    expect(page.locator(".trigger-card.disabled")).to_have_count(1)
    expect(page.locator("#graph .trigger-off")).to_have_count(1)
    settle(page)
    undo = page.get_by_role("button", name="Undo", exact=True)
    expect(undo).to_be_enabled()
    assert "Disable trigger" in undo.get_attribute("title")
    undo.click()
    page.locator("#builder-status", has_text="Undone: Disable trigger").wait_for()
    settle(page)
    # The canvas and the open panel both show the trigger enabled again.
    expect(page.locator("#graph .trigger-off")).to_have_count(0)
    expect(page.locator(".trigger-card.disabled")).to_have_count(0)
    with firm_context(acme.id):
        db.session.expire_all()
        assert all(t.is_active for t in db.session.get(Workflow, workflow.id).triggers)
    assert errors == []
