"""A node type is one class: registering one (in this module only) puts it
in the palette, the inspector, graph validation, the engine and the API's
enums; and every registered type has all of its parts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from app.api.openapi import openapi_document
from app.automation.graph.definition import Graph
from app.automation.graph.validation import validate_definition
from app.automation.nodes import form
from app.automation.nodes.registry import (
    CheckContext,
    NodeConfig,
    NodeType,
    all_node_types,
    keys_where,
    register,
    unregister,
)
from app.automation.nodes.step import Outcome, Step
from app.extensions import db
from app.models import WorkflowNode
from app.models.delivery import CHANNELS
from app.tenancy import firm_context
from app.web.builder_common import FAMILY_TITLES
from app.web.builder_forms import FROM_VALUES, TO_VALUES
from tests.engine.helpers import active_workflow, flow_states, run
from tests.factories import make_contact, make_workflow
from tests.web.conftest import HX

FIELDS_TEMPLATE = Path(__file__).parents[2] / "templates" / "nodes" / "_fields.html"


class StampConfig(NodeConfig):
    note: str = Field(min_length=1, max_length=50)


class Stamp(NodeType):
    key = "test_stamp"
    label = "Stamp"
    family = "action"
    icon = "tag"
    description = "Writes its note into the step's result."
    Config = StampConfig
    form = (form.Text("note", "Note to stamp", required=True),)
    waits = True  # so a loop through it is allowed

    @classmethod
    def default_config(cls) -> dict:
        return {"note": "hello"}

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Stamp {config.get('note')}"

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        return Outcome(result={"stamped": step.config.note})

    @classmethod
    def check(cls, configuration: dict, context: CheckContext) -> dict[str, list[str]]:
        assert isinstance(context, CheckContext)
        return {"note": ["that note is forged"]} if configuration.get("note") == "forged" else {}


@pytest.fixture
def stamp():
    register(Stamp)
    openapi_document.cache_clear()
    yield Stamp
    unregister(Stamp.key)
    openapi_document.cache_clear()


def _stamped(firm, **config):
    return make_workflow(
        firm,
        nodes=[
            {"node_id": "stamp", "node_type": "test_stamp", "configuration": config},
        ],
        triggers=[{"trigger_type": "manual"}],
    )


def test_a_registered_type_is_in_the_palette_and_its_card(client, signed_in, alice, acme, stamp):
    workflow = _stamped(acme, note="ink")
    signed_in(alice)
    page = client.get(f"/automation/builder/{workflow.id}").get_data(as_text=True)
    assert 'data-node-type="test_stamp"' in page
    assert "Stamp ink" in page


def test_a_registered_type_has_an_inspector_form(client, signed_in, alice, acme, stamp):
    workflow = _stamped(acme, note="ink")
    token = signed_in(alice)
    path = f"/automation/builder/{workflow.id}/nodes/stamp"
    fragment = client.get(path, headers=HX).get_data(as_text=True)
    assert 'name="note" value="ink"' in fragment and "Note to stamp" in fragment
    data = {"csrf_token": token, "_action": "save", "label": "Stamp it", "node_id": "stamp"}
    refused = client.post(path, data={**data, "note": " "}, headers=HX)
    assert refused.status_code == 422
    saved = client.post(path, data={**data, "note": "seal"}, headers=HX)
    assert saved.status_code == 200, saved.get_data(as_text=True)
    db.session.expire_all()
    with firm_context(acme.id):
        node = db.session.query(WorkflowNode).filter_by(workflow_id=workflow.id).one()
        assert node.configuration == {"note": "seal"}


def test_the_types_own_check_refuses_in_the_inspector_the_api_and_an_import(
    client, signed_in, token_for, alice, acme, stamp
):
    workflow = _stamped(acme, note="ink")
    token = signed_in(alice)
    path = f"/automation/builder/{workflow.id}/nodes/stamp"
    data = {"csrf_token": token, "_action": "save", "label": "Stamp it", "node_id": "stamp"}
    refused = client.post(path, data={**data, "note": "forged"}, headers=HX)
    assert refused.status_code == 422
    assert "that note is forged" in refused.get_data(as_text=True)

    bearer = token_for(alice)
    body = {"workflow": workflow.id, "node_id": "two", "node_type": "test_stamp"}
    answer = client.post(
        "/api/v1/automation/nodes/",
        json={**body, "configuration": {"note": "forged"}},
        headers=bearer,
    )
    assert answer.status_code == 422
    assert answer.get_json()["error"]["fields"] == {"configuration.note": ["that note is forged"]}

    exported = client.get(f"/api/v1/automation/workflows/{workflow.id}/export/", headers=bearer)
    document = exported.get_json()
    document["workflow"]["nodes"][0]["configuration"]["note"] = "forged"
    imported = client.post("/api/v1/automation/workflows/import/", json=document, headers=bearer)
    assert imported.status_code == 422
    [problem] = imported.get_json()["error"]["problems"]
    assert problem["field"] == "workflow.nodes.0.configuration.note"


class Milestone(Stamp):
    key = "test_milestone"
    label = "Milestone"
    family = "goal"
    converts = True
    jump_target = True


@pytest.fixture
def milestone():
    register(Milestone)
    yield Milestone
    unregister(Milestone.key)


def test_the_entry_and_reachability_read_the_jump_target_flag(milestone):
    nodes = [
        {"node_id": "first", "node_type": "add_tag", "configuration": {"tag": "a"}},
        {"node_id": "mark", "node_type": "test_milestone", "configuration": {"note": "x"}},
    ]
    definition = {"nodes": nodes, "edges": [], "triggers": [{"trigger_type": "manual"}]}
    graph = Graph(definition)
    assert graph.entry() == "first"  # a jump target is never the first step
    [problem] = validate_definition(definition)
    assert problem["node"] == "mark" and "goal is never reached" in problem["message"]
    nodes[1]["configuration"] = {"note": "x", "match": "all", "rules": [{"field": "score"}]}
    assert [node["node_id"] for node in Graph(definition).goals_with_rules()] == ["mark"]


def test_validation_reads_the_type(stamp):
    nodes = [
        {"node_id": "first", "node_type": "add_tag", "configuration": {"tag": "a"}},
        {"node_id": "stamp", "node_type": "test_stamp", "configuration": {"note": "x"}},
        {"node_id": "again", "node_type": "add_tag", "configuration": {"tag": "b"}},
    ]
    edges = [
        {"source": "first", "target": "stamp"},
        {"source": "stamp", "target": "again"},
        {"source": "again", "target": "stamp"},
    ]
    definition = {"nodes": nodes, "edges": edges, "triggers": [{"trigger_type": "manual"}]}
    assert validate_definition(definition) == []  # the loop passes the waiting type
    nodes[1]["configuration"] = {"note": ""}
    problems = validate_definition(definition)
    assert [p["node"] for p in problems] == ["stamp"]
    assert "note" in problems[0]["message"]


def test_the_engine_runs_the_type(acme, alice, stamp):
    workflow = active_workflow(
        acme,
        alice,
        [{"node_id": "stamp", "node_type": "test_stamp", "configuration": {"note": "ink"}}],
        [],
    )
    contact = make_contact(acme)
    execution = run(workflow, contact)
    assert execution.status == "completed"
    states = flow_states(acme.id, execution.id)
    assert states[0].node_id == "stamp"
    assert states[0].action_result["stamped"] == "ink"


def test_the_api_enums_list_the_type(client, stamp):
    schemas = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    enums = [
        prop["enum"]
        for schema in schemas.values()
        for name, prop in (schema.get("properties") or {}).items()
        if name == "node_type" and "enum" in prop
    ]
    assert enums and all("test_stamp" in enum for enum in enums)
    assert all("test_stamp" not in kind.key for kind in all_node_types() if kind is not Stamp)


def test_every_registered_type_is_complete():
    macros = FIELDS_TEMPLATE.read_text()
    for kind in all_node_types():
        where = kind.key
        assert kind.label and kind.description and kind.icon, where
        assert kind.family in FAMILY_TITLES, where
        assert issubclass(kind.Config, NodeConfig), where
        assert kind.execute.__func__ is not NodeType.execute.__func__, f"{where}: no execute"
        assert kind.summary.__func__ is not NodeType.summary.__func__, f"{where}: no summary"
        assert kind.form, f"{where}: no inspector form"
        keys = set(kind.Config.model_fields)
        for field in kind.form:
            assert field.kind in form.KINDS, where
            assert f"macro field_{field.kind}(" in macros, f"{where}: {field.kind} not drawn"
            if field.keys:
                assert field.kind in FROM_VALUES, f"{where}: {field.kind} not read"
                assert set(field.keys) <= keys, f"{where}: {field.keys} not in its Config"
        assert set(kind.templated) <= keys, where
        assert isinstance(kind.summary(kind.default_config()), str), where
        assert kind.sends_message == (kind.channel is not None), where
        assert kind.channel is None or kind.channel in CHANNELS, where
        assert bool(kind.previewed) == any(isinstance(f, form.Preview) for f in kind.form), where
        assert {key for key, _, _ in kind.previewed} <= keys, where
        if kind.uses_rules:
            assert {"match", "rules"} <= keys, where
            assert any(isinstance(field, form.Rules) for field in kind.form), where
    assert keys_where("sends_message") == {"send_email", "send_sms", "webhook"}
    assert keys_where("converts") == keys_where("jump_target") == {"goal"}
    assert set(TO_VALUES) <= form.KINDS
