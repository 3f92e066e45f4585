"""Webhook header values may be credentials whatever their names: an
export blanks every one unless the person exporting opts in, and the
outbox page masks the rendered values of a sent webhook."""

from __future__ import annotations

import json

from app.extensions import db
from app.models import OutboxMessage, WorkflowExecution
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow

HEADERS = {"Authorization": "Bearer SECRET1", "X-Api-Key": "SECRET2", "X-Custom": "SECRET3"}


def _hook_workflow(acme):
    return make_workflow(
        acme,
        nodes=[
            {
                "node_id": "hook",
                "node_type": "webhook",
                "configuration": {"url": "https://example.com/hook", "headers": HEADERS},
            }
        ],
        triggers=[{"trigger_type": "manual"}],
    )


def test_an_export_blanks_every_header_value(client, auth, acme, alice, token_for):
    workflow = _hook_workflow(acme)
    auth.login(alice)
    page = client.get(f"/automation/{workflow.id}/export.json")
    api = client.get(
        f"/api/v1/automation/workflows/{workflow.id}/export/", headers=token_for(alice)
    )
    for response in (page, api):
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        assert "SECRET" not in text
        node = json.loads(text)["workflow"]["nodes"][0]
        assert node["configuration"]["headers"] == dict.fromkeys(HEADERS, "")


def test_an_export_keeps_header_values_when_asked(client, auth, acme, alice, token_for):
    workflow = _hook_workflow(acme)
    auth.login(alice)
    page = client.get(f"/automation/{workflow.id}/export.json?header_values=1")
    api = client.get(
        f"/api/v1/automation/workflows/{workflow.id}/export/?include_header_values=true",
        headers=token_for(alice),
    )
    for response in (page, api):
        node = json.loads(response.get_data(as_text=True))["workflow"]["nodes"][0]
        assert node["configuration"]["headers"] == HEADERS


def test_the_outbox_page_masks_rendered_header_values(client, auth, acme, bob):
    workflow = _hook_workflow(acme)
    contact = make_contact(acme)
    with firm_context(acme.id):
        execution = WorkflowExecution(
            workflow_id=workflow.id, contact_id=contact.id, idempotency_key="k"
        )
        db.session.add(execution)
        db.session.flush()
        message = OutboxMessage(
            execution_id=execution.id,
            workflow_id=workflow.id,
            node_id="hook",
            channel="webhook",
            message_id="m-1",
            to_address="https://example.com/hook",
            payload={"method": "POST", "headers": HEADERS, "body": {"ok": True}},
        )
        db.session.add(message)
        db.session.commit()
        message_id = message.id
    auth.login(bob)
    page = client.get(f"/outbox/{message_id}").get_data(as_text=True)
    assert "X-Custom" in page and "Authorization" in page
    assert "SECRET" not in page
