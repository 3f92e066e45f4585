"""Export writes a document without ids; import makes a draft; they round-trip."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.automation.graph.validation import validate_workflow
from app.automation.lifecycle.portability import ImportProblems, export_workflow, import_workflow
from app.extensions import db
from app.models import ContactList, Form, Workflow, WorkflowGoal
from app.tenancy import firm_context
from tests.factories import make_workflow


@pytest.fixture
def rich(acme):
    with firm_context(acme.id):
        newsletter = ContactList(name="Newsletter")
        signup = Form(name="Signup", fields=[])
        db.session.add_all([newsletter, signup])
        db.session.commit()
        list_id, form_id = newsletter.id, signup.id
    workflow = make_workflow(
        acme,
        name="Rich",
        description="Everything at once",
        allow_reentry=True,
        nodes=[
            {
                "node_id": "check",
                "node_type": "condition",
                "label": "In newsletter?",
                "position_x": 12.5,
                "position_y": 40.0,
                "configuration": {
                    "match": "any",
                    "rules": [
                        {"list": list_id, "op": "in"},
                        {"match": "all", "rules": [{"tag": "vip", "op": "has"}]},
                    ],
                },
            },
            {"node_id": "join", "node_type": "add_to_list", "configuration": {"list": list_id}},
            {"node_id": "done", "node_type": "goal", "configuration": {"goal_value": 5}},
        ],
        edges=[("check", "join", "no"), ("check", "done", "yes"), ("join", "done")],
        triggers=[
            {"trigger_type": "form_submitted", "configuration": {"form_id": form_id}},
            {"trigger_type": "manual", "is_active": False},
        ],
    )
    with firm_context(acme.id):
        db.session.add(
            WorkflowGoal(
                workflow_id=workflow.id,
                name="Joined",
                goal_node_id=workflow.node_by_key("done").id,
                goal_value=Decimal("12.5"),
            )
        )
        db.session.commit()
    return workflow


def _ids_in(value) -> list:
    """Every key ending in id / _id with an int value, anywhere."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if (key == "id" or key.endswith("_id")) and isinstance(item, int):
                found.append(key)
            found.extend(_ids_in(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_ids_in(item))
    return found


def test_the_export_has_no_ids_and_names_firm_records(acme, rich):
    with firm_context(acme.id):
        document = export_workflow(rich)
    assert document["format"] == "automation-workflow" and document["version"] == 1
    json.dumps(document)  # JSON-ready
    assert _ids_in(document) == []
    wf = document["workflow"]
    assert wf["nodes"][1]["configuration"]["list"] == {"$ref": "list", "name": "Newsletter"}
    assert wf["nodes"][0]["configuration"]["rules"][0]["list"] == {
        "$ref": "list",
        "name": "Newsletter",
    }
    assert wf["triggers"][0]["configuration"] == {"form_id": {"$ref": "form", "name": "Signup"}}
    assert wf["goals"] == [{"name": "Joined", "node": "done", "goal_value": "12.50"}]
    assert wf["edges"][0] == {
        "source": "check",
        "target": "join",
        "condition_type": "no",
        "condition_config": {},
        "label": "",
    }
    assert "firm" not in json.dumps(document)


def test_export_import_export_round_trips_exactly(acme, rich, bob):
    with firm_context(acme.id):
        document = export_workflow(rich)
        copy_ = import_workflow(json.loads(json.dumps(document)), bob)
        assert copy_.id != rich.id and copy_.status == "draft" and copy_.version == 0
        assert copy_.created_by_id == bob.id
        db.session.expire_all()
        assert export_workflow(db.session.get(Workflow, copy_.id)) == document


def test_an_import_into_another_firm_uses_its_records(acme, globex, rich, charlie):
    with firm_context(acme.id):
        document = export_workflow(rich)
    with firm_context(globex.id):
        db.session.add(Form(name="Signup", fields=[]))
        db.session.commit()
        imported = import_workflow(document, charlie)
        newsletter = db.session.scalars(select(ContactList)).one()  # created on import
        form = db.session.scalars(select(Form)).one()
        assert imported.firm_id == globex.id
        assert imported.node_by_key("join").configuration["list"] == newsletter.id
        assert imported.triggers[0].configuration == {"form_id": form.id}
        assert export_workflow(imported)["workflow"]["nodes"] == document["workflow"]["nodes"]


def test_an_import_names_every_problem_and_creates_nothing(acme, rich, bob):
    with firm_context(acme.id):
        document = copy.deepcopy(export_workflow(rich))
    wf = document["workflow"]
    wf["nodes"][1]["node_type"] = "teleport"
    wf["nodes"][2]["configuration"]["goal_value"] = -1
    wf["edges"].append({"source": "check", "target": "ghost"})
    wf["triggers"][0]["configuration"]["form_id"] = {"$ref": "form", "name": "Nope"}
    wf["triggers"].append({"trigger_type": "score_threshold_reached", "configuration": {}})
    with firm_context(acme.id):
        before = db.session.scalar(select(db.func.count()).select_from(Workflow))
        with pytest.raises(ImportProblems) as info:
            import_workflow(document, bob)
        fields = {p["field"] for p in info.value.problems}
        assert {
            "workflow.nodes.1.node_type",
            "workflow.nodes.2.configuration.goal_value",
            "workflow.edges.3.target",
            "workflow.triggers.0.configuration",
            "workflow.triggers.2.configuration.threshold",
        } <= fields
        assert db.session.scalar(select(db.func.count()).select_from(Workflow)) == before


@pytest.mark.parametrize(
    "document, field",
    [
        ({}, "format"),
        ({"format": "other", "version": 1, "workflow": {"name": "x"}}, "format"),
        ({"format": "automation-workflow", "version": 2, "workflow": {"name": "x"}}, "version"),
        (
            {"format": "automation-workflow", "version": 1, "workflow": {"name": ""}},
            "workflow.name",
        ),
        (
            {"format": "automation-workflow", "version": 1, "workflow": {"name": "x", "id": 3}},
            "workflow.id",
        ),
        ("not a document", "document"),
    ],
)
def test_a_malformed_document_is_refused_with_the_field(acme, bob, document, field):
    with firm_context(acme.id), pytest.raises(ImportProblems) as info:
        import_workflow(document, bob)
    assert field in {p["field"] for p in info.value.problems}


def test_an_unfinished_graph_imports_as_a_draft(acme, bob):
    document = {
        "format": "automation-workflow",
        "version": 1,
        "workflow": {
            "name": "Half done",
            "nodes": [{"node_id": "a", "node_type": "add_tag", "configuration": {"tag": "x"}}],
        },
    }
    with firm_context(acme.id):
        workflow = import_workflow(document, bob, name="Renamed")
        assert workflow.name == "Renamed" and workflow.status == "draft"
        assert validate_workflow(workflow)  # no trigger yet


def test_webhook_header_values_are_not_exported(acme, bob):
    workflow = make_workflow(
        acme,
        nodes=[
            {
                "node_id": "hook",
                "node_type": "webhook",
                "configuration": {
                    "url": "https://example.com/hook",
                    "headers": {"Authorization": "Bearer s3cr3t", "X-Api-Key": "k", "X-Team": "a"},
                },
            }
        ],
        triggers=[{"trigger_type": "manual"}],
    )
    with firm_context(acme.id):
        document = export_workflow(workflow)
        assert document["workflow"]["nodes"][0]["configuration"]["headers"] == {
            "Authorization": "",
            "X-Api-Key": "",
            "X-Team": "",
        }
        assert "s3cr3t" not in json.dumps(document)
        assert export_workflow(import_workflow(document, bob)) == document


def test_topics_travel_by_name(acme, globex, bob, charlie):
    """A topic rule and a send_email's topic are references by name; an
    import into a firm without that topic names the problem."""
    from app.models import Topic

    with firm_context(acme.id):
        news = Topic(name="News")
        db.session.add(news)
        db.session.commit()
        news_id = news.id
    workflow = make_workflow(
        acme,
        nodes=[
            {
                "node_id": "check",
                "node_type": "condition",
                "configuration": {"rules": [{"topic": news_id, "op": "subscribed"}]},
            },
            {
                "node_id": "mail",
                "node_type": "send_email",
                "configuration": {"subject": "Hi", "body_html": "<p>Hi</p>", "topic": news_id},
            },
        ],
        edges=[("check", "mail", "yes")],
    )
    with firm_context(acme.id):
        document = export_workflow(workflow)
    nodes = document["workflow"]["nodes"]
    assert nodes[0]["configuration"]["rules"][0]["topic"] == {"$ref": "topic", "name": "News"}
    assert nodes[1]["configuration"]["topic"] == {"$ref": "topic", "name": "News"}
    with firm_context(globex.id):
        with pytest.raises(ImportProblems) as refused:
            import_workflow(copy.deepcopy(document), charlie)
        assert "no topic named 'News'" in json.dumps(refused.value.problems)
        theirs = Topic(name="News")
        db.session.add(theirs)
        db.session.commit()
        imported = import_workflow(copy.deepcopy(document), charlie)
        assert imported.node_by_key("check").configuration["rules"][0]["topic"] == theirs.id
        assert imported.node_by_key("mail").configuration["topic"] == theirs.id
