"""The split's experiment settings in the inspector, and the experiments on
the analytics page."""

from __future__ import annotations

from app.clock import now
from app.extensions import db
from app.models import SplitDecision
from app.tenancy import firm_context
from tests.factories import make_workflow
from tests.web.test_builder import reload_workflow
from tests.web.test_builder_inspector import inspector_post

VARIANTS = [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}]
FORM = {
    "label": "A/B",
    "variants-0-name": "A",
    "variants-0-weight": "50",
    "variants-1-name": "B",
    "variants-1-weight": "50",
}


def _workflow(firm, **configuration):
    return make_workflow(
        firm,
        nodes=[
            {
                "node_id": "step",
                "node_type": "split",
                "label": "Offer test",
                "configuration": {"variants": VARIANTS, **configuration},
            },
            {"node_id": "won", "node_type": "goal", "label": "Bought", "configuration": {}},
        ],
        edges=[("step", "won", "variant", {"variant": "A"})],
    )


def test_the_inspector_offers_the_experiment_settings(client, signed_in, alice, acme):
    workflow = _workflow(acme, metric={"goal": "won"}, holdout_percent=15)
    signed_in(alice)
    page = client.get(f"/automation/builder/{workflow.id}/nodes/step").get_data(as_text=True)
    assert 'name="metric"' in page and 'value="goal:won" selected' in page
    assert "Goal: Bought" in page
    assert 'name="auto_winner_on"' in page and 'name="min_per_variant"' in page
    assert 'name="holdout_percent"' in page and 'value="15"' in page


def test_the_inspector_saves_metric_winner_and_holdout(client, signed_in, alice, acme):
    workflow = _workflow(acme)
    token = signed_in(alice)
    data = {
        **FORM,
        "metric": "goal:won",
        "auto_winner_on": "on",
        "min_per_variant": "250",
        "alpha": "0.01",
        "holdout_percent": "10",
    }
    response = inspector_post(client, token, workflow, "step", data)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert reload_workflow(workflow).node_by_key("step").configuration == {
        "variants": VARIANTS,
        "metric": {"goal": "won"},
        "auto_winner": {"min_per_variant": 250, "alpha": 0.01},
        "holdout_percent": 10,
    }


def test_the_inspector_refuses_a_bad_holdout_and_alpha_beside_their_boxes(
    client, signed_in, alice, acme
):
    workflow = _workflow(acme)
    token = signed_in(alice)
    data = {**FORM, "auto_winner_on": "on", "alpha": "0.9", "holdout_percent": "75"}
    response = inspector_post(client, token, workflow, "step", data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="err-holdout_percent"' in page
    assert 'id="err-auto_winner-alpha"' in page
    assert reload_workflow(workflow).node_by_key("step").configuration == {"variants": VARIANTS}
    data["holdout_percent"] = "lots"
    response = inspector_post(client, token, workflow, "step", data)
    assert response.status_code == 422
    assert "must be a number" in response.get_data(as_text=True)


def test_the_analytics_page_shows_the_experiment_and_its_decision(client, auth, alice, acme):
    workflow = _workflow(acme, auto_winner={"min_per_variant": 100, "alpha": 0.05})
    moment = now()
    with firm_context(acme.id):
        db.session.add(
            SplitDecision(
                workflow_id=workflow.id,
                node_id="step",
                winner="B",
                p_value=0.0123,
                alpha=0.05,
                test="mSPRT",
                metric="goal_reached",
                numbers={
                    "A": {"entered": 120, "conversions": 6},
                    "B": {"entered": 118, "conversions": 19},
                },
                decided_at=moment,
            )
        )
        db.session.commit()
    auth.login(alice)
    response = client.get(f"/automation/analytics/{workflow.id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="experiment-step"' in page and "Offer test" in page
    assert "Winner: B" in page and "p = 0.0123" in page
    assert moment.strftime("%Y-%m-%d %H:%M") in page
    assert "A 6 of 120, B 19 of 118" in page


def test_another_firms_analytics_page_is_not_found(client, auth, charlie, acme):
    workflow = _workflow(acme)
    auth.login(charlie)
    assert client.get(f"/automation/analytics/{workflow.id}").status_code == 404


def test_a_decided_split_says_its_winner_on_the_canvas(client, signed_in, alice, acme):
    workflow = _workflow(acme, holdout_percent=10)
    signed_in(alice)
    page = client.get(f"/automation/builder/{workflow.id}").get_data(as_text=True)
    assert "Split A 50% / B 50%, 10% held out" in page and "winner B" not in page
    with firm_context(acme.id):
        db.session.add(
            SplitDecision(
                workflow_id=workflow.id,
                node_id="step",
                winner="B",
                p_value=0.01,
                alpha=0.05,
                test="mSPRT",
                metric="goal_reached",
            )
        )
        db.session.commit()
    page = client.get(f"/automation/builder/{workflow.id}").get_data(as_text=True)
    assert "Split A 50% / B 50%, 10% held out · winner B" in page
