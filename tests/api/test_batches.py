"""The batch forms: up to 1,000 events or trigger items in one call, each
item answered with its own status, the single call's idempotency rules."""

from __future__ import annotations

from app.extensions import db
from app.models import AuditLog, EventLog, WorkflowExecution
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow

WF = "/api/v1/automation/workflows/"
EVENTS = "/api/v1/events/"


def _workflow(acme, trigger_type="api", **fields):
    return make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": trigger_type}],
        status="active",
        **fields,
    )


def _executions(acme) -> list[WorkflowExecution]:
    with firm_context(acme.id):
        return list(db.session.query(WorkflowExecution).order_by(WorkflowExecution.id))


def test_a_trigger_batch_answers_every_item_on_its_own(api, acme, globex):
    workflow = _workflow(acme)
    ann, bob, cid = make_contact(acme), make_contact(acme), make_contact(acme)
    theirs = make_contact(globex)
    first = api.post(
        f"{WF}{workflow.id}/trigger/",
        json=[{"contact_id": cid.id, "idempotency_key": "k-cid"}],
    )
    assert first.status_code == 200, first.json
    response = api.post(
        f"{WF}{workflow.id}/trigger/",
        json=[
            {"contact_id": ann.id, "context": {"plan": "pro"}, "idempotency_key": "k-ann"},
            {"contact_id": theirs.id},
            {"contact_id": cid.id, "idempotency_key": "k-cid"},
            {"contact_id": bob.id, "idempotency_key": "k-cid"},
            {"contact_id": "x"},
            {"contact_id": ann.id},
            {"contact_id": ann.id, "idempotency_key": "k-ann"},
        ],
    )
    assert response.status_code == 200, response.json
    results = response.json["results"]
    assert [r["status"] for r in results] == [201, 422, 200, 409, 400, 409, 200]
    assert results[1]["error"]["fields"] == {"contact_id": ["no such contact id"]}
    assert results[2]["execution_id"] == first.json["results"][0]["execution_id"]
    assert results[2]["duplicate"] is True
    assert "another contact" in results[3]["error"]["message"]
    assert "contact_id" in results[4]["error"]["fields"]
    assert results[6]["execution_id"] == results[0]["execution_id"]
    executions = _executions(acme)
    assert [(e.contact_id, e.trigger_type) for e in executions] == [
        (cid.id, "api"),
        (ann.id, "api"),
    ]
    assert executions[1].context_data["plan"] == "pro"
    assert executions[1].event_id == "api:k-ann"
    with firm_context(acme.id):
        fired = db.session.query(AuditLog).filter_by(action="trigger.fired").count()
    assert fired == 2


def test_a_trigger_batch_on_an_inactive_workflow_is_refused_whole(api, acme):
    workflow = _workflow(acme, trigger_type="manual")
    workflow_id = workflow.id
    with firm_context(acme.id):
        db.session.get(type(workflow), workflow_id).status = "paused"
        db.session.commit()
    contact = make_contact(acme)
    response = api.post(f"{WF}{workflow_id}/trigger/", json=[{"contact_id": contact.id}])
    assert response.status_code == 409
    assert _executions(acme) == []


def test_a_batch_holds_1_to_1000_items(api, acme):
    workflow = _workflow(acme)
    contact = make_contact(acme)
    too_many = [{"contact_id": contact.id}] * 1001
    for body in ([], too_many):
        response = api.post(f"{WF}{workflow.id}/trigger/", json=body)
        assert response.status_code == 400
        assert "__root__" in response.json["error"]["fields"]
        assert api.post(EVENTS, json=body).status_code == 400
    assert _executions(acme) == []


def test_an_event_batch_answers_every_item_on_its_own(api, acme, globex):
    _workflow(acme, trigger_type="email_opened")
    ann, bob = make_contact(acme), make_contact(acme)
    theirs = make_contact(globex)
    seen = api.post(EVENTS, json={"type": "email_opened", "contact_id": bob.id, "event_id": "e0"})
    assert seen.status_code == 202
    response = api.post(
        EVENTS,
        json=[
            {"type": "email_opened", "contact_id": ann.id, "event_id": "e1"},
            {"type": "email_opened", "contact_id": bob.id, "event_id": "e0"},
            {"type": "moon", "contact_id": ann.id},
            {"type": "email_opened", "contact_id": theirs.id},
            {"type": "email_opened", "contact_id": ann.id, "event_id": "e1"},
            {"type": "page_visited", "contact_id": ann.id, "data": {"url": "/pricing"}},
            ["not", "an", "object"],
        ],
    )
    assert response.status_code == 200, response.json
    results = response.json["results"]
    assert [r["status"] for r in results] == [202, 202, 422, 422, 202, 202, 400]
    assert results[0]["duplicate"] is False and len(results[0]["executions"]) == 1
    assert results[1] == {
        "status": 202,
        "event_id": "e0",
        "duplicate": True,
        "executions": [],
        "error": None,
    }
    assert "type" in results[2]["error"]["fields"]
    assert results[4]["duplicate"] is True and results[4]["executions"] == []
    assert results[5]["event_id"].startswith("api_") and results[5]["duplicate"] is False
    with firm_context(acme.id):
        rows = db.session.query(EventLog).filter(EventLog.event_type != "contact_created")
        logged = sorted(e.event_type for e in rows)
    assert logged == ["email_opened", "email_opened", "page_visited"]
    assert [e.contact_id for e in _executions(acme)] == [bob.id, ann.id]


def test_the_openapi_document_shows_both_forms(client):
    document = client.get("/api/openapi.json").json
    for path in ("/api/v1/events/", "/api/v1/automation/workflows/{workflow_id}/trigger/"):
        operation = document["paths"][path]["post"]
        [single, batch] = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
        assert batch["type"] == "array" and batch["maxItems"] == 1000
        assert "200" in operation["responses"]
