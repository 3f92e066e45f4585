"""GET .../workflows/{id}/experiments/ and the split's experiment settings."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.clock import now
from app.extensions import db
from app.models import SplitDecision, WorkflowNode
from app.tenancy import firm_context
from tests.factories import make_workflow

NODES = "/api/v1/automation/nodes/"
VARIANTS = [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}]


def _url(workflow) -> str:
    return f"/api/v1/automation/workflows/{workflow.id}/experiments/"


@pytest.fixture
def split_workflow(acme):
    return make_workflow(
        acme,
        nodes=[
            {
                "node_id": "split",
                "node_type": "split",
                "label": "Subject test",
                "configuration": {
                    "variants": VARIANTS,
                    "metric": {"goal": "won"},
                    "auto_winner": {"min_per_variant": 200, "alpha": 0.01},
                    "holdout_percent": 10,
                },
            },
            {"node_id": "won", "node_type": "goal", "configuration": {}},
        ],
        edges=[("split", "won", "variant", {"variant": "A"})],
    )


def test_it_lists_each_split_with_its_numbers(api, split_workflow):
    response = api.get(_url(split_workflow))
    assert response.status_code == 200
    (experiment,) = response.json["results"]
    assert response.json["next"] is None
    assert experiment["node_id"] == "split" and experiment["label"] == "Subject test"
    assert experiment["metric"] == "goal:won"
    assert experiment["auto_winner"] == {"min_per_variant": 200, "alpha": 0.01}
    assert [v["name"] for v in experiment["variants"]] == ["A", "B"]
    assert experiment["variants"][0] == {
        "name": "A",
        "weight": 50,
        "entered": 0,
        "conversions": 0,
        "rate": 0.0,
        "interval": [0.0, 0.0],
    }
    assert "mSPRT" in experiment["test"]
    assert experiment["winner"] is None and experiment["decided_at"] is None
    assert experiment["holdout"]["percent"] == 10
    assert experiment["holdout"]["lift"]["available"] is False


def test_it_shows_the_recorded_decision(api, acme, split_workflow):
    moment = now()
    with firm_context(acme.id):
        db.session.add(
            SplitDecision(
                workflow_id=split_workflow.id,
                node_id="split",
                winner="B",
                p_value=0.004,
                alpha=0.01,
                test="mSPRT",
                metric="goal:won",
                numbers={"A": {"entered": 250, "conversions": 20}},
                decided_at=moment,
            )
        )
        db.session.commit()
    (experiment,) = api.get(_url(split_workflow)).json["results"]
    assert experiment["winner"] == "B" and experiment["p_value"] == 0.004
    assert experiment["decided_at"] == moment.isoformat()
    assert experiment["decision"]["numbers"] == {"A": {"entered": 250, "conversions": 20}}


def test_another_firms_workflow_is_not_found(api, globex):
    theirs = make_workflow(globex)
    response = api.get(_url(theirs))
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"holdout_percent": 80}, "configuration.holdout_percent"),
        ({"holdout_percent": -1}, "configuration.holdout_percent"),
        ({"metric": "revenue"}, "configuration.metric"),
        ({"metric": {"goal": ""}}, "configuration.metric"),
        (
            {"auto_winner": {"min_per_variant": 100, "alpha": 0.5}},
            "configuration.auto_winner.alpha",
        ),
        ({"auto_winner": {"min_per_variant": 2}}, "configuration.auto_winner.min_per_variant"),
        ({"auto_winner": {"beta": 1}}, "configuration.auto_winner.beta"),
    ],
)
def test_bad_experiment_settings_are_refused_naming_the_field(api, acme, extra, field):
    workflow = make_workflow(acme)
    response = api.post(
        NODES,
        json={
            "workflow": workflow.id,
            "node_id": "split",
            "node_type": "split",
            "configuration": {"variants": VARIANTS, **extra},
        },
    )
    assert response.status_code == 422
    assert field in response.json["error"]["fields"]


def test_a_variant_may_not_be_called_holdout(api, acme):
    workflow = make_workflow(acme)
    response = api.post(
        NODES,
        json={
            "workflow": workflow.id,
            "node_id": "split",
            "node_type": "split",
            "configuration": {
                "variants": [{"name": "A", "weight": 50}, {"name": "Holdout", "weight": 50}]
            },
        },
    )
    assert response.status_code == 422
    assert "configuration.variants" in response.json["error"]["fields"]


def test_good_experiment_settings_are_saved(api, acme):
    workflow = make_workflow(acme)
    configuration = {
        "variants": VARIANTS,
        "metric": "click",
        "auto_winner": {"min_per_variant": 150, "alpha": 0.05},
        "holdout_percent": 25,
    }
    response = api.post(
        NODES,
        json={
            "workflow": workflow.id,
            "node_id": "split",
            "node_type": "split",
            "configuration": configuration,
        },
    )
    assert response.status_code == 201, response.json
    with firm_context(acme.id):
        node = db.session.scalars(select(WorkflowNode).filter_by(node_id="split")).one()
        assert node.configuration == configuration
