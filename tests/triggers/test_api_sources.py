"""Triggers started through the JSON API: CRM changes, the trigger
endpoint with Idempotency-Key, and events from other systems."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, EventLog
from app.tenancy import firm_context
from tests.factories import make_contact
from tests.triggers.conftest import executions_of


def test_a_contact_created_through_the_api_fires_contact_created(
    client, acme, alice, token_for, live_workflow
):
    workflow = live_workflow(acme, "contact_created")
    response = client.post(
        "/api/v1/contacts/", json={"email": "api@example.com"}, headers=token_for(alice)
    )
    assert response.status_code == 201, response.get_json()
    (execution,) = executions_of(acme, workflow)
    assert execution.contact_id == response.get_json()["id"]
    assert execution.context_data["source"] == "api"


def test_a_tag_added_through_the_api_fires_contact_tag_added(
    client, acme, alice, token_for, live_workflow
):
    workflow = live_workflow(acme, "contact_tag_added", {"tag": "vip"})
    contact = make_contact(acme)
    response = client.post(
        f"/api/v1/contacts/{contact.id}/tags/", json={"tag": "vip"}, headers=token_for(alice)
    )
    assert response.status_code in (200, 201), response.get_json()
    assert [e.contact_id for e in executions_of(acme, workflow)] == [contact.id]


def test_a_deal_won_through_the_api_fires_deal_won(client, acme, alice, token_for, live_workflow):
    workflow = live_workflow(acme, "deal_won")
    contact = make_contact(acme)
    headers = token_for(alice)
    deal = client.post(
        "/api/v1/deals/", json={"contact": contact.id, "title": "Renewal"}, headers=headers
    ).get_json()
    assert executions_of(acme, workflow) == []
    response = client.patch(f"/api/v1/deals/{deal['id']}/", json={"status": "won"}, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert [e.contact_id for e in executions_of(acme, workflow)] == [contact.id]


def test_the_trigger_endpoint_starts_an_api_workflow_once_per_idempotency_key(
    client, acme, alice, token_for, live_workflow
):
    workflow = live_workflow(acme, "api", allow_reentry=True)
    contact = make_contact(acme)
    headers = {**token_for(alice), "Idempotency-Key": "order-42"}
    url = f"/api/v1/automation/workflows/{workflow.id}/trigger/"
    body = {"contact_id": contact.id, "context": {"order": 42}}
    first = client.post(url, json=body, headers=headers)
    assert first.status_code == 201, first.get_json()
    again = client.post(url, json=body, headers=headers)
    assert again.get_json()["id"] == first.get_json()["id"]
    (execution,) = executions_of(acme, workflow)
    assert execution.trigger_type == "api" and execution.context_data["order"] == 42
    with firm_context(acme.id):
        fired = db.session.scalars(select(AuditLog).where(AuditLog.action == "trigger.fired"))
        assert [a.data["source"] for a in fired] == ["api"]


def test_the_trigger_endpoint_refuses_a_workflow_without_an_api_trigger(
    client, acme, alice, token_for, live_workflow
):
    workflow = live_workflow(acme, "contact_tag_added")
    contact = make_contact(acme)
    response = client.post(
        f"/api/v1/automation/workflows/{workflow.id}/trigger/",
        json={"contact_id": contact.id},
        headers=token_for(alice),
    )
    assert response.status_code == 409
    assert executions_of(acme, workflow) == []


def test_events_from_other_systems_start_workflows_once(
    client, acme, alice, token_for, live_workflow
):
    workflow = live_workflow(acme, "page_visited", {"url_contains": "/pricing"})
    contact = make_contact(acme)
    body = {
        "type": "page_visited",
        "contact_id": contact.id,
        "data": {"url": "https://acme.example/pricing"},
        "event_id": "crm-sync-1",
    }
    for _ in range(2):
        response = client.post("/api/v1/events/", json=body, headers=token_for(alice))
        assert response.status_code == 202, response.get_json()
    assert [e.contact_id for e in executions_of(acme, workflow)] == [contact.id]
    with firm_context(acme.id):
        logged = db.session.scalars(select(EventLog).where(EventLog.event_id == "crm-sync-1"))
        assert len(list(logged)) == 1
