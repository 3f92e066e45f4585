"""Experiments in Chromium: the split inspector's metric, auto-winner and
holdout fields save (and refuse bad numbers beside their box), and the
analytics page shows a decided winner in its experiment table; axe finds
nothing serious on either (docs/EXPERIMENTS.md)."""

from __future__ import annotations

import random

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import WorkflowNode
from app.tenancy import firm_context
from tests.analytics.test_experiments import _experiment_workflow, _split, _stream
from tests.e2e.tour import axe_source, axe_violations, describe
from tests.factories import make_workflow

pytestmark = pytest.mark.browser


def _config(workflow, node_id: str) -> dict:
    db.session.expire_all()
    with firm_context(workflow.firm_id):
        node = db.session.query(WorkflowNode).filter_by(workflow_id=workflow.id, node_id=node_id)
        configuration = dict(node.one().configuration)
    db.session.commit()
    return configuration


def test_the_split_inspector_saves_metric_auto_winner_and_holdout(
    logged_in_page, live_server, alice, acme
):
    workflow = make_workflow(
        acme,
        nodes=[
            _split(),
            {"node_id": "won", "node_type": "goal", "configuration": {"goal_value": 1}},
        ],
        edges=[("split", "won", "variant", {"variant": "A"})],
    )
    page = logged_in_page(alice)
    source = axe_source()
    page.goto(f"{live_server.url}/automation/builder/{workflow.id}?node=split")
    panel = page.locator("#inspector[data-node-id='split']")
    panel.wait_for()
    page.wait_for_load_state("networkidle")
    panel.locator('select[name="metric"]').select_option("goal:won")
    panel.locator('input[name="auto_winner_on"]').check()
    panel.locator('[name="min_per_variant"]').fill("100")
    panel.locator('[name="alpha"]').fill("2")
    panel.locator('[name="holdout_percent"]').fill("80")
    panel.get_by_role("button", name="Save step").click()
    # Refused beside the boxes they name; nothing saved.
    alpha = panel.locator('[name="alpha"]').locator(
        "xpath=ancestor::div[contains(@class,'field')][1]"
    )
    expect(alpha.locator(".field-error")).to_be_visible()
    holdout = panel.locator('[name="holdout_percent"]').locator(
        "xpath=ancestor::div[contains(@class,'field')][1]"
    )
    expect(holdout.locator(".field-error")).to_be_visible()
    assert "auto_winner" not in _config(workflow, "split")
    assert axe_violations(page, source) == [], describe(axe_violations(page, source))

    panel = page.locator("#inspector[data-node-id='split']")
    panel.locator('[name="alpha"]').fill("0.05")
    panel.locator('[name="holdout_percent"]').fill("10")
    panel.get_by_role("button", name="Save step").click()
    page.locator("#inspector .flash-success").wait_for()
    saved = _config(workflow, "split")
    assert saved["metric"] == {"goal": "won"}
    assert saved["auto_winner"] == {"min_per_variant": 100, "alpha": 0.05}
    assert saved["holdout_percent"] == 10
    # Read back as saved after a reload.
    page.goto(f"{live_server.url}/automation/builder/{workflow.id}?node=split")
    panel = page.locator("#inspector[data-node-id='split']")
    panel.wait_for()
    expect(panel.locator('select[name="metric"]')).to_have_value("goal:won")
    expect(panel.locator('input[name="auto_winner_on"]')).to_be_checked()
    expect(panel.locator('[name="holdout_percent"]')).to_have_value("10")
    assert page.js_errors == []


def test_the_analytics_page_shows_the_decided_winner(logged_in_page, live_server, alice, acme):
    workflow = _experiment_workflow(acme, alice, 0.10, 0.35)
    assert sum(_stream(acme, workflow, random.Random(11), chunks=10)) == 1
    page = logged_in_page(alice)
    page.goto(f"{live_server.url}/automation/analytics/{workflow.id}")
    experiment = page.locator("#experiment-split")
    expect(experiment.locator(".verdict")).to_contain_text("Winner: B")
    expect(experiment.locator("tr.winner")).to_have_count(1)
    expect(experiment.locator("tr.winner td").first).to_have_text("B (winner)")
    expect(experiment).to_contain_text("Decided on: A")
    source = axe_source()
    assert axe_violations(page, source) == [], describe(axe_violations(page, source))
    assert page.js_errors == []
