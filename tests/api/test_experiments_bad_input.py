"""Junk in a split's experiment settings and on the experiments list: 400
or 422 naming the field, never a 500 (docs/EXPERIMENTS.md)."""

from __future__ import annotations

import pytest

from tests.factories import make_workflow

NODES = "/api/v1/automation/nodes/"
VARIANTS = [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}]


@pytest.fixture
def draft(acme):
    return make_workflow(
        acme, nodes=[{"node_id": "won", "node_type": "goal", "configuration": {"goal_value": 1}}]
    )


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"metric": 5}, "configuration.metric"),
        ({"metric": "clicks"}, "configuration.metric"),
        ({"metric": {"goal": ""}}, "configuration.metric"),
        ({"metric": {"goal": "won", "x": 1}}, "configuration.metric"),
        ({"metric": {"goal": ["won"]}}, "configuration.metric"),
        ({"auto_winner": "yes"}, "configuration.auto_winner"),
        ({"auto_winner": {"min_per_variant": -1}}, "configuration.auto_winner.min_per_variant"),
        ({"auto_winner": {"min_per_variant": "many"}}, "configuration.auto_winner.min_per_variant"),
        ({"auto_winner": {"alpha": 2}}, "configuration.auto_winner.alpha"),
        ({"auto_winner": {"alpha": 0}}, "configuration.auto_winner.alpha"),
        ({"holdout_percent": "abc"}, "configuration.holdout_percent"),
        ({"holdout_percent": 80}, "configuration.holdout_percent"),
        ({"holdout_percent": -1}, "configuration.holdout_percent"),
        ({"variants": [{"name": "holdout", "weight": 50}, VARIANTS[1]]}, "configuration.variants"),
    ],
)
def test_bad_experiment_settings_are_a_422_naming_the_field(api, draft, extra, field):
    answer = api.post(
        NODES,
        json={
            "workflow": draft.id,
            "node_id": "split",
            "node_type": "split",
            "configuration": {"variants": VARIANTS, **extra},
        },
    )
    assert answer.status_code in (400, 422), answer.get_data(as_text=True)[:300]
    fields = answer.json["error"].get("fields") or {}
    assert any(key.startswith(field) for key in fields), answer.json


@pytest.mark.parametrize("query", ["limit=abc", "limit=0", "limit=-5", "cursor=junk", "cursor=%00"])
def test_experiments_list_junk_is_a_400(api, draft, query):
    answer = api.get(f"/api/v1/automation/workflows/{draft.id}/experiments/?{query}")
    assert answer.status_code in (200, 400, 422), answer.status_code
    if answer.status_code != 200:
        assert query.split("=")[0] in answer.json["error"]["fields"], answer.json


def test_another_firms_or_no_workflow_is_404(api, globex):
    theirs = make_workflow(globex)
    for workflow_id in (theirs.id, 999999):
        answer = api.get(f"/api/v1/automation/workflows/{workflow_id}/experiments/")
        assert answer.status_code == 404


def test_a_goal_metric_naming_no_goal_step_cannot_go_live(api, acme):
    from app.automation.graph.validation import validate_definition

    nodes = [
        {
            "node_id": "split",
            "node_type": "split",
            "configuration": {"variants": VARIANTS, "metric": {"goal": "nowhere"}},
        },
        {"node_id": "won", "node_type": "goal", "configuration": {"goal_value": 1}},
        {"node_id": "nowhere", "node_type": "add_tag", "configuration": {"tag": "x"}},
    ]
    edges = [
        {"source": "split", "target": "won", "port": "variant", "condition": {"variant": "A"}},
        {"source": "split", "target": "nowhere", "port": "variant", "condition": {"variant": "B"}},
    ]
    definition = {"nodes": nodes, "edges": edges, "triggers": [{"trigger_type": "manual"}]}
    problems = validate_definition(definition)
    assert {
        "node": "split",
        "message": "metric: no goal step 'nowhere' in this workflow",
    } in problems
    nodes[0]["configuration"]["metric"] = {"goal": "won"}
    assert not [p for p in validate_definition(definition) if "goal step" in p["message"]]
    workflow = make_workflow(
        acme,
        nodes=[{**nodes[0], "configuration": {"variants": VARIANTS, "metric": {"goal": "gone"}}}],
        triggers=[{"trigger_type": "manual"}],
    )
    answer = api.post(f"/api/v1/automation/workflows/{workflow.id}/activate/")
    assert answer.status_code in (400, 409, 422), answer.get_data(as_text=True)[:300]
    assert "no goal step 'gone'" in answer.get_data(as_text=True)
