"""The lifecycle API: versions, publish, rollback, templates, export/import,
comments and approvals, with the API's auth and error conventions."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.automation.lifecycle.approvals import set_requires_approval
from app.automation.lifecycle.publishing import publish
from app.extensions import db
from app.models import ApprovalRequest, Workflow, WorkflowExecution
from app.tenancy import firm_context
from tests.lifecycle.helpers import nurture_workflow, park

API = "/api/v1/automation"


@pytest.fixture
def live(acme, alice):
    workflow = nurture_workflow(acme)
    with firm_context(acme.id):
        publish(workflow, alice)
    return workflow


@pytest.fixture
def as_alice(token_for, alice):
    return token_for(alice)


@pytest.fixture
def as_bob(token_for, bob):
    return token_for(bob)


def _drop_tips(acme, workflow):
    with firm_context(acme.id):
        wf = db.session.get(Workflow, workflow.id)
        tips = wf.node_by_key("send_tips")
        for edge in list(wf.edges):
            if tips.id in (edge.source_node_id, edge.target_node_id):
                db.session.delete(edge)
        db.session.delete(tips)
        db.session.flush()
        from app.models import WorkflowEdge

        db.session.add(
            WorkflowEdge(
                workflow_id=wf.id,
                source_node_id=wf.node_by_key("wait_2_days").id,
                target_node_id=wf.node_by_key("wait_1_day").id,
            )
        )
        db.session.commit()


def test_versions_are_listed_and_shown(client, live, as_alice, alice):
    page = client.get(f"{API}/workflows/{live.id}/versions/", headers=as_alice).get_json()
    assert [v["number"] for v in page["results"]] == [1] and page["next"] is None
    one = client.get(f"{API}/workflows/{live.id}/versions/1/", headers=as_alice).get_json()
    assert one["created_by"] == alice.id
    assert {n["node_id"] for n in one["definition"]["nodes"]} >= {"send_welcome", "tag_done"}
    assert set(one["definition"]) >= {"nodes", "edges", "triggers", "settings"}
    missing = client.get(f"{API}/workflows/{live.id}/versions/7/", headers=as_alice)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"


def test_publish_moves_contacts_per_the_mapping(client, acme, live, as_alice):
    ids = park(acme, live, "send_tips", 2)
    _drop_tips(acme, live)
    counts = client.get(f"{API}/workflows/{live.id}/waiting/", headers=as_alice).get_json()
    assert counts == {"counts": {"send_tips": 2}}

    refused = client.post(f"{API}/workflows/{live.id}/publish/", json={}, headers=as_alice)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["unmapped"] == [{"node": "send_tips", "count": 2}]

    bad = client.post(
        f"{API}/workflows/{live.id}/publish/",
        json={"mapping": {"send_tips": "nowhere"}},
        headers=as_alice,
    )
    assert bad.status_code == 422
    assert "mapping.send_tips" in bad.get_json()["error"]["fields"]

    done = client.post(
        f"{API}/workflows/{live.id}/publish/",
        json={"mapping": {"send_tips": "wait_1_day"}, "keep_on_old_version": False},
        headers=as_alice,
    )
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert body["version"]["number"] == 2 and body["moved"] == {"send_tips": 2}
    with firm_context(acme.id):
        rows = db.session.scalars(
            select(WorkflowExecution).where(WorkflowExecution.id.in_(ids))
        ).all()
        assert {(r.version, r.current_node) for r in rows} == {(2, "wait_1_day")}


def test_publish_answers_problems_for_an_invalid_graph(client, acme, live, as_alice):
    with firm_context(acme.id):
        for trigger in db.session.get(Workflow, live.id).triggers:
            db.session.delete(trigger)
        db.session.commit()
    response = client.post(f"{API}/workflows/{live.id}/publish/", json={}, headers=as_alice)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_workflow" and error["problems"]


def test_publish_refuses_unknown_fields(client, live, as_alice):
    response = client.post(
        f"{API}/workflows/{live.id}/publish/", json={"mapp": {}}, headers=as_alice
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["fields"] == {"mapp": ["unknown field"]}


def test_rollback_publishes_an_old_version(client, acme, live, as_alice):
    _drop_tips(acme, live)
    assert (
        client.post(f"{API}/workflows/{live.id}/publish/", json={}, headers=as_alice).status_code
        == 200
    )
    response = client.post(
        f"{API}/workflows/{live.id}/rollback/", json={"version": 1}, headers=as_alice
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["version"]["number"] == 3
    diff = client.get(
        f"{API}/workflows/{live.id}/versions/diff/?base=2&to=3", headers=as_alice
    ).get_json()
    assert [n["node_id"] for n in diff["nodes"]["added"]] == ["send_tips"]
    unknown = client.post(
        f"{API}/workflows/{live.id}/rollback/", json={"version": 9}, headers=as_alice
    )
    assert unknown.status_code == 422 and "version" in unknown.get_json()["error"]["fields"]


def test_templates_are_listed_and_instantiated(client, acme, as_bob, bob):
    listing = client.get(f"{API}/templates/", headers=as_bob).get_json()
    keys = [t["key"] for t in listing["results"]]
    assert len(keys) >= 8 and "welcome_series" in keys
    assert set(listing["results"][0]) >= {"key", "name", "description"}
    made = client.post(
        f"{API}/templates/welcome_series/instantiate/", json={"name": "Our welcome"}, headers=as_bob
    )
    assert made.status_code == 201
    body = made.get_json()
    assert body["name"] == "Our welcome" and body["status"] == "draft"
    assert len(body["nodes"]) == 7 and body["triggers"][0]["trigger_type"] == "contact_created"
    with firm_context(acme.id):
        assert db.session.get(Workflow, body["id"]).created_by_id == bob.id
    missing = client.post(f"{API}/templates/nope/instantiate/", json={}, headers=as_bob)
    assert missing.status_code == 404


def test_export_then_import_round_trips(client, live, as_alice):
    document = client.get(f"{API}/workflows/{live.id}/export/", headers=as_alice).get_json()
    assert document["format"] == "automation-workflow" and document["version"] == 1
    made = client.post(f"{API}/workflows/import/", json=document, headers=as_alice)
    assert made.status_code == 201
    new_id = made.get_json()["id"]
    again = client.get(f"{API}/workflows/{new_id}/export/", headers=as_alice).get_json()
    assert again == document


def test_import_answers_422_with_problems(client, live, as_alice):
    document = client.get(f"{API}/workflows/{live.id}/export/", headers=as_alice).get_json()
    document["workflow"]["nodes"][0]["node_type"] = "teleport"
    response = client.post(f"{API}/workflows/import/", json=document, headers=as_alice)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_document"
    assert error["problems"][0]["field"] == "workflow.nodes.0.node_type"
    garbage = client.post(
        f"{API}/workflows/import/",
        data="nope",
        headers={**as_alice, "Content-Type": "application/json"},
    )
    assert garbage.status_code == 400


def test_comments_through_the_api(client, live, as_bob, as_alice):
    url = f"{API}/workflows/{live.id}/comments/"
    made = client.post(url, json={"body": "Nice", "node_id": "send_welcome"}, headers=as_bob)
    assert made.status_code == 201
    client.post(url, json={"body": "Overall fine"}, headers=as_bob)
    assert client.post(url, json={"body": ""}, headers=as_bob).status_code == 400
    ghost = client.post(url, json={"body": "x", "node_id": "ghost"}, headers=as_bob)
    assert ghost.get_json()["error"]["fields"] == {
        "node_id": ["'ghost' is not a step of this workflow"]
    }
    only_step = client.get(f"{url}?node=send_welcome", headers=as_bob).get_json()
    assert [c["body"] for c in only_step["results"]] == ["Nice"]
    counts = client.get(f"{url}counts/", headers=as_bob).get_json()
    assert counts == {"counts": {"send_welcome": 1}}
    comment_id = made.get_json()["id"]
    assert client.delete(f"{url}{comment_id}/", headers=as_alice).status_code == 204


def test_approval_flow_through_the_api(client, acme, alice, bob, as_alice, as_bob):
    workflow = nurture_workflow(acme)
    with firm_context(acme.id):
        set_requires_approval(db.session.get(type(acme), acme.id), True)
    asked = client.post(f"{API}/workflows/{workflow.id}/publish/", json={}, headers=as_bob)
    assert asked.status_code == 202, asked.get_json()
    approval = asked.get_json()["approval"]
    assert approval["status"] == "pending" and approval["requested_by"] == bob.id
    queue = client.get(f"{API}/approvals/", headers=as_alice).get_json()
    assert [a["id"] for a in queue["results"]] == [approval["id"]]

    denied = client.post(f"{API}/approvals/{approval['id']}/approve/", headers=as_bob)
    assert denied.status_code == 403
    ok = client.post(f"{API}/approvals/{approval['id']}/approve/", headers=as_alice)
    assert ok.status_code == 200
    assert ok.get_json()["version"]["number"] == 1
    assert ok.get_json()["approval"]["status"] == "approved"
    again = client.post(f"{API}/approvals/{approval['id']}/reject/", json={}, headers=as_alice)
    assert again.status_code == 409
    with firm_context(acme.id):
        assert db.session.get(Workflow, workflow.id).status == "active"
        assert db.session.scalars(select(ApprovalRequest.status)).all() == ["approved"]


def test_activate_by_a_marketer_needing_approval_answers_403_not_422(client, acme, bob, as_bob):
    workflow = nurture_workflow(acme)
    with firm_context(acme.id):
        set_requires_approval(db.session.get(type(acme), acme.id), True)
    answer = client.post(f"{API}/workflows/{workflow.id}/activate/", headers=as_bob)
    assert answer.status_code == 403, answer.get_json()
    assert answer.get_json()["error"]["code"] == "approval_required"
    with firm_context(acme.id):
        assert db.session.get(Workflow, workflow.id).status == "draft"


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/workflows/{id}/versions/"),
        ("get", "/workflows/{id}/versions/1/"),
        ("get", "/workflows/{id}/waiting/"),
        ("post", "/workflows/{id}/publish/"),
        ("post", "/workflows/{id}/rollback/"),
        ("get", "/workflows/{id}/export/"),
        ("get", "/workflows/{id}/comments/"),
        ("post", "/workflows/{id}/comments/"),
    ],
)
def test_another_firms_workflow_is_404(client, live, charlie, token_for, method, path):
    body = {"version": 1} if "rollback" in path else {"body": "x"} if "comments" in path else {}
    kwargs = {"headers": token_for(charlie)}
    if method == "post":
        kwargs["json"] = body
    response = getattr(client, method)(API + path.format(id=live.id), **kwargs)
    assert response.status_code == 404


def test_portal_users_and_strangers_are_refused(client, live, paula, token_for):
    assert client.get(f"{API}/templates/").status_code == 401
    portal = client.get(f"{API}/workflows/{live.id}/versions/", headers=token_for(paula))
    assert portal.status_code == 403


def test_import_refuses_what_the_database_cannot_store(client, live, as_alice):
    document = client.get(f"{API}/workflows/{live.id}/export/", headers=as_alice).get_json()
    document["workflow"]["nodes"][0]["label"] = "bad\u0000label"
    nul = client.post(f"{API}/workflows/import/", json=document, headers=as_alice)
    assert nul.status_code == 422
    assert nul.get_json()["error"]["problems"][0]["field"] == "document.workflow.nodes.0.label"
    text = client.get(f"{API}/workflows/{live.id}/export/", headers=as_alice).get_data(as_text=True)
    nan = text.replace('"position_x":100.0', '"position_x":NaN', 1)
    assert nan != text
    response = client.post(
        f"{API}/workflows/import/",
        data=nan,
        headers={**as_alice, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_json"


def test_the_import_body_is_documented(client):
    document = client.get("/api/openapi.json").get_json()
    operation = document["paths"]["/api/v1/automation/workflows/import/"]["post"]
    assert "requestBody" in operation
