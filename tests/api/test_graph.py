"""Triggers, nodes and edges: saved when valid, refused with the reason."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, WorkflowEdge, WorkflowNode
from app.tenancy import firm_context
from tests.api.world import make_execution
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow

NODES = "/api/v1/automation/nodes/"
EDGES = "/api/v1/automation/edges/"
TRIGGERS = "/api/v1/automation/triggers/"


@pytest.fixture
def draft(acme):
    return make_workflow(acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES)


def node_pk(workflow, key: str) -> int:
    with firm_context(workflow.firm_id):
        stmt = select(WorkflowNode.id).filter_by(workflow_id=workflow.id, node_id=key)
        return db.session.scalars(stmt).one()


def add_node(api, workflow, node_id, node_type, configuration=None):
    return api.post(
        NODES,
        json={
            "workflow": workflow.id,
            "node_id": node_id,
            "node_type": node_type,
            "configuration": configuration or {},
        },
    )


# --- triggers ---


def test_it_creates_lists_updates_and_deletes_triggers(api, draft):
    created = api.post(
        TRIGGERS,
        json={
            "workflow": draft.id,
            "trigger_type": "contact_tag_added",
            "configuration": {"tag": "vip"},
        },
    )
    assert created.status_code == 201, created.json
    trigger_id = created.json["id"]
    assert created.json["workflow"] == draft.id
    listed = api.get(f"{TRIGGERS}?workflow={draft.id}").json["results"]
    assert [t["id"] for t in listed] == [trigger_id]
    updated = api.patch(f"{TRIGGERS}{trigger_id}/", json={"is_active": False})
    assert updated.json["is_active"] is False
    assert api.get(f"{TRIGGERS}{trigger_id}/").json["is_active"] is False
    assert api.delete(f"{TRIGGERS}{trigger_id}/").status_code == 204
    assert api.get(f"{TRIGGERS}{trigger_id}/").status_code == 404


def test_an_unknown_trigger_type_is_a_422(api, draft):
    response = api.post(TRIGGERS, json={"workflow": draft.id, "trigger_type": "moon_phase"})
    assert response.status_code == 422
    assert "trigger_type" in response.json["error"]["fields"]


def test_a_trigger_configuration_is_checked_against_its_type(api, draft):
    response = api.post(
        TRIGGERS,
        json={
            "workflow": draft.id,
            "trigger_type": "score_threshold_reached",
            "configuration": {"threshold": "lots"},
        },
    )
    assert response.status_code == 422
    assert "configuration.threshold" in response.json["error"]["fields"]


def test_a_trigger_for_another_firms_workflow_is_refused(api, acme, globex):
    theirs = make_workflow(globex)
    response = api.post(TRIGGERS, json={"workflow": theirs.id, "trigger_type": "manual"})
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"workflow": ["no such workflow"]}


# --- nodes ---


def test_it_creates_updates_and_deletes_nodes(api, draft):
    created = add_node(api, draft, "tag_vip", "add_tag", {"tag": "vip"})
    assert created.status_code == 201, created.json
    pk = created.json["id"]
    assert created.json["configuration"] == {"tag": "vip"}
    updated = api.patch(f"{NODES}{pk}/", json={"label": "Tag as VIP", "position_x": 300})
    assert updated.json["label"] == "Tag as VIP"
    assert updated.json["position_x"] == 300
    assert api.get(f"{NODES}{pk}/").json["node_id"] == "tag_vip"
    listed = api.get(f"{NODES}?workflow={draft.id}").json["results"]
    assert len(listed) == 4
    assert api.delete(f"{NODES}{pk}/").status_code == 204
    with firm_context(draft.firm_id):
        assert db.session.get(WorkflowNode, pk) is None
        assert db.session.query(AuditLog).filter_by(action="node.deleted").count() == 1


def test_a_node_configuration_error_names_the_field(api, draft):
    response = add_node(api, draft, "wait", "wait_time", {"wait_duration_hours": "soon"})
    assert response.status_code == 422
    assert "configuration.wait_duration_hours" in response.json["error"]["fields"]


def test_an_unknown_node_type_is_a_422(api, draft):
    response = add_node(api, draft, "teleport", "teleport")
    assert response.status_code == 422
    assert "node_type" in response.json["error"]["fields"]


def test_a_template_syntax_error_is_refused_at_save(api, draft):
    response = add_node(
        api, draft, "mail", "send_email", {"subject": "Hi {{ contact.first_name", "body_text": "x"}
    )
    assert response.status_code == 422
    assert "configuration.subject" in response.json["error"]["fields"]


def test_a_webhook_to_a_private_address_is_refused_at_save(api, draft):
    response = add_node(api, draft, "hook", "webhook", {"url": "http://127.0.0.1:8080/x"})
    assert response.status_code == 422
    assert "configuration.url" in response.json["error"]["fields"]


def test_a_duplicate_node_id_is_a_409(api, draft):
    response = add_node(api, draft, "wait_2_days", "wait_time", {"wait_duration_hours": 1})
    assert response.status_code == 409
    assert response.json["error"]["fields"] == {"node_id": ["already used in this workflow"]}


def test_renaming_onto_a_taken_node_id_is_a_409(api, draft):
    pk = node_pk(draft, "goal")
    response = api.patch(f"{NODES}{pk}/", json={"node_id": "wait_2_days"})
    assert response.status_code == 409


def test_deleting_a_node_contacts_wait_on_is_refused_while_active(api, acme, draft):
    with firm_context(acme.id):
        draft.status = "active"
        db.session.commit()
    for _ in range(2):
        make_execution(draft, make_contact(acme), node="wait_2_days")
    pk = node_pk(draft, "wait_2_days")
    refused = api.delete(f"{NODES}{pk}/")
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "contacts_waiting"
    assert refused.json["error"]["count"] == 2
    renamed = api.patch(f"{NODES}{pk}/", json={"node_id": "wait_longer"})
    assert renamed.status_code == 409
    # Paused: the marketer has stopped the flow on purpose.
    with firm_context(acme.id):
        draft.status = "paused"
        db.session.commit()
    assert api.delete(f"{NODES}{pk}/").status_code == 204


def test_deleting_a_node_nobody_waits_on_is_fine_while_active(api, acme, draft):
    with firm_context(acme.id):
        draft.status = "active"
        db.session.commit()
    make_execution(draft, make_contact(acme), node="wait_2_days")
    assert api.delete(f"{NODES}{node_pk(draft, 'goal')}/").status_code == 204


# --- edges ---


def test_it_creates_and_deletes_edges(api, acme):
    workflow = make_workflow(
        acme,
        nodes=[
            {"node_id": "check", "node_type": "condition",
             "configuration": {"rules": [{"tag": "vip", "op": "has"}]}},
            {"node_id": "yes", "node_type": "add_tag", "configuration": {"tag": "a"}},
            {"node_id": "no", "node_type": "add_tag", "configuration": {"tag": "b"}},
        ],
    )  # fmt: skip
    check, yes, no = (node_pk(workflow, key) for key in ("check", "yes", "no"))
    first = api.post(
        EDGES, json={"source_node": check, "target_node": yes, "condition_type": "yes"}
    )
    assert first.status_code == 201, first.json
    assert first.json["workflow"] == workflow.id
    second = api.post(EDGES, json={"source_node": check, "target_node": no, "condition_type": "no"})
    assert second.status_code == 201
    assert len(api.get(f"{EDGES}?workflow={workflow.id}").json["results"]) == 2
    assert api.get(f"{EDGES}{first.json['id']}/").json["condition_type"] == "yes"
    assert api.delete(f"{EDGES}{first.json['id']}/").status_code == 204
    with firm_context(acme.id):
        assert db.session.query(WorkflowEdge).count() == 1


def test_an_edge_to_another_workflows_node_is_a_422(api, acme, draft):
    other = make_workflow(acme, name="Other", nodes=WELCOME_NODES)
    response = api.post(
        EDGES,
        json={"source_node": node_pk(draft, "goal"), "target_node": node_pk(other, "goal")},
    )
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"target_node": ["is a node of another workflow"]}


def test_an_edge_to_another_firms_node_is_not_found(api, acme, globex, draft):
    theirs = make_workflow(globex, nodes=WELCOME_NODES)
    response = api.post(
        EDGES,
        json={"source_node": node_pk(draft, "goal"), "target_node": node_pk(theirs, "goal")},
    )
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"target_node": ["no such target node"]}


def test_an_edge_condition_must_be_an_output_of_its_source(api, draft):
    response = api.post(
        EDGES,
        json={
            "source_node": node_pk(draft, "goal"),
            "target_node": node_pk(draft, "send_welcome_email"),
            "condition_type": "yes",
        },
    )
    assert response.status_code == 422
    assert "not an output" in response.json["error"]["fields"]["condition_type"][0]


def test_an_output_connects_once(api, draft):
    response = api.post(
        EDGES,
        json={
            "source_node": node_pk(draft, "send_welcome_email"),
            "target_node": node_pk(draft, "goal"),
        },
    )
    assert response.status_code == 422
    assert "already connected" in response.json["error"]["fields"]["condition_type"][0]


def test_an_edge_may_not_loop_on_one_node(api, draft):
    pk = node_pk(draft, "goal")
    response = api.post(EDGES, json={"source_node": pk, "target_node": pk})
    assert response.status_code == 422


def test_an_edge_workflow_must_match_its_nodes(api, acme, draft):
    other = make_workflow(acme, name="Other")
    response = api.post(
        EDGES,
        json={
            "workflow": other.id,
            "source_node": node_pk(draft, "goal"),
            "target_node": node_pk(draft, "send_welcome_email"),
        },
    )
    assert response.status_code == 422
    assert "workflow" in response.json["error"]["fields"]
